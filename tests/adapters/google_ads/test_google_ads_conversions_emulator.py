"""The Google Ads emulator's offline-conversion uploads, over HTTP as a REST sender sends them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests
import time_machine

from adapters.google_ads.emulator import MAX_UPLOAD_ROWS, Emulator

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
LEAD, WON, REMOVED, WEB = 501, 502, 503, 504
EMAIL = hashlib.sha256(b"ada@example.com").hexdigest()


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.add_campaign(9, "Spring Sale")
        emulator.add_click("GCLID-NOV-10", 9, date(2026, 11, 10))
        emulator.add_click("GCLID-OCT-01", 9, date(2026, 10, 1))
        emulator.add_click(
            "GCLID-JUST-NOW", 9, date(2026, 11, 20), at=datetime(2026, 11, 20, 10, tzinfo=UTC)
        )
        emulator.add_click("WBRAID-1", 9, date(2026, 11, 10), kind="wbraid")
        emulator.add_conversion_action(LEAD, "Lead created")
        emulator.add_conversion_action(WON, "Closed won", click_through_lookback_window_days=30)
        emulator.add_conversion_action(REMOVED, "Old action", status="REMOVED")
        emulator.add_conversion_action(WEB, "Website purchase", type="WEBPAGE")
        yield emulator


def headers(emu: Emulator, token: str | None = None) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token or emu.access_token}",
        "developer-token": emu.developer_token,
        "login-customer-id": emu.customer_id,
    }


def row(
    emu: Emulator, gclid: str | None = "GCLID-NOV-10", action: int = LEAD, **kw: Any
) -> dict[str, Any]:
    conversion: dict[str, Any] = {
        "conversionAction": emu.conversion_action_name(action),
        "conversionDateTime": "2026-11-15 09:30:00+01:00",
        **kw,
    }
    if gclid:
        conversion["gclid"] = gclid
    return conversion


def upload(emu: Emulator, conversions: list[dict[str, Any]], **body: Any) -> requests.Response:
    return requests.post(
        f"{emu.url}/v26/customers/{emu.customer_id}:uploadClickConversions",
        json={"conversions": conversions, "partialFailure": True, **body},
        headers=headers(emu),
        timeout=10,
    )


def adjust(emu: Emulator, adjustments: list[dict[str, Any]], **body: Any) -> requests.Response:
    return requests.post(
        f"{emu.url}/v26/customers/{emu.customer_id}:uploadConversionAdjustments",
        json={"conversionAdjustments": adjustments, "partialFailure": True, **body},
        headers=headers(emu),
        timeout=10,
    )


def row_errors(answer: dict[str, Any]) -> list[tuple[int, dict[str, str]]]:
    """(row index, errorCode) of every partial failure."""
    failure = answer.get("partialFailureError")
    if not failure:
        return []
    assert failure["code"] == 3
    [detail] = failure["details"]
    assert detail["@type"].endswith("google.ads.googleads.v26.errors.GoogleAdsFailure")
    return [
        (e["location"]["fieldPathElements"][0]["index"], e["errorCode"]) for e in detail["errors"]
    ]


def test_accepted_conversions_are_stored_and_echoed(emu: Emulator) -> None:
    response = upload(
        emu,
        [
            row(emu, conversionValue=1200.5, currencyCode="EUR", orderId="OPP-1"),
            row(emu, None, wbraid="WBRAID-1", action=WON),
        ],
    )

    assert response.status_code == 200
    answer = response.json()
    assert "partialFailureError" not in answer
    assert answer["results"] == [
        {
            "gclid": "GCLID-NOV-10",
            "conversionAction": "customers/1234567890/conversionActions/501",
            "conversionDateTime": "2026-11-15 09:30:00+01:00",
        },
        {
            "wbraid": "WBRAID-1",
            "conversionAction": "customers/1234567890/conversionActions/502",
            "conversionDateTime": "2026-11-15 09:30:00+01:00",
        },
    ]
    assert int(answer["jobId"]) >= 2**31
    first, second = emu.conversions
    assert (first.action_id, first.click_id, first.value, first.currency, first.order_id) == (
        "501",
        "GCLID-NOV-10",
        1200.5,
        "EUR",
        "OPP-1",
    )
    assert first.at == datetime(2026, 11, 15, 8, 30, tzinfo=UTC)
    assert first.click is not None and first.click.campaign_id == "9"
    assert (second.click_kind, second.action_id) == ("wbraid", "502")
    assert emu.rejected == []


def test_a_job_id_given_is_echoed(emu: Emulator) -> None:
    answer = upload(emu, [row(emu)], jobId=42).json()
    assert answer["jobId"] == "42"
    assert emu.conversions[0].job_id == "42"


@pytest.mark.parametrize(
    ("overrides", "error_code", "field"),
    [
        ({"gclid": "NOT-A-CLICK"}, {"conversionUploadError": "UNPARSEABLE_GCLID"}, "gclid"),
        (
            {"conversionDateTime": "2026-11-09 23:00:00+00:00"},
            {"conversionUploadError": "CONVERSION_PRECEDES_EVENT"},
            "conversion_date_time",
        ),
        (
            {"gclid": "GCLID-OCT-01", "conversionAction": WON},
            {"conversionUploadError": "EXPIRED_EVENT"},
            None,
        ),
        (
            {"gclid": "GCLID-JUST-NOW", "conversionDateTime": "2026-11-20 11:00:00+00:00"},
            {"conversionUploadError": "TOO_RECENT_EVENT"},
            None,
        ),
        (
            {"conversionAction": 999},
            {"conversionUploadError": "NO_CONVERSION_ACTION_FOUND"},
            "conversion_action",
        ),
        (
            {"conversionAction": REMOVED},
            {"conversionUploadError": "NO_CONVERSION_ACTION_FOUND"},
            "conversion_action",
        ),
        (
            {"conversionAction": WEB},
            {"conversionUploadError": "INVALID_CONVERSION_ACTION_TYPE"},
            "conversion_action",
        ),
        (
            {"conversionDateTime": "2026-11-15T09:30:00Z"},
            {"dateError": "INVALID_STRING_DATE_TIME_SECONDS_WITH_OFFSET"},
            "conversion_date_time",
        ),
        (
            {"gclid": None, "gbraid": "G-1", "wbraid": "WBRAID-1"},
            {"conversionUploadError": "GBRAID_WBRAID_BOTH_SET"},
            "gbraid",
        ),
        (
            {"gclid": None, "wbraid": "W-404"},
            {"conversionUploadError": "UNPARSEABLE_WBRAID"},
            "wbraid",
        ),
        (
            {"gclid": None, "userIdentifiers": [{"hashedEmail": "ada@example.com"}]},
            {"conversionUploadError": "INVALID_USER_IDENTIFIER"},
            "user_identifiers",
        ),
        (
            {"gclid": None, "userIdentifiers": [{"thirdPartyUserId": "u-1"}]},
            {"conversionUploadError": "UNSUPPORTED_USER_IDENTIFIER"},
            "user_identifiers",
        ),
        ({"gclid": None}, {"fieldError": "REQUIRED"}, "gclid"),
    ],
)
def test_a_failing_row_is_reported_at_its_index_and_the_rest_accepted(
    emu: Emulator, overrides: dict[str, Any], error_code: dict[str, str], field: str | None
) -> None:
    bad = row(emu, **{k: v for k, v in overrides.items() if k != "conversionAction"})
    if "conversionAction" in overrides:
        bad["conversionAction"] = emu.conversion_action_name(overrides["conversionAction"])
    bad = {k: v for k, v in bad.items() if v is not None}

    answer = upload(emu, [row(emu, orderId="GOOD"), bad]).json()

    assert row_errors(answer) == [(1, error_code)]
    assert answer["results"][0]["gclid"] == "GCLID-NOV-10" and answer["results"][1] == {}
    [error] = answer["partialFailureError"]["details"][0]["errors"]
    path = [e["fieldName"] for e in error["location"]["fieldPathElements"]]
    assert path == ["conversions"] + ([field] if field else [])
    assert "conversions[1]" in answer["partialFailureError"]["message"]
    assert [c.order_id for c in emu.conversions] == ["GOOD"]
    [rejected] = emu.rejected
    assert (rejected.method, rejected.index, rejected.error_code) == (
        "uploadClickConversions",
        1,
        error_code,
    )
    assert rejected.row == bad


def test_a_second_upload_of_the_same_conversion_is_accepted_zero_times(emu: Emulator) -> None:
    assert (
        row_errors(upload(emu, [row(emu), row(emu, "GCLID-OCT-01", orderId="OPP-7")]).json()) == []
    )

    again = upload(
        emu,
        [
            row(emu),  # same click, action and time
            row(emu, conversionDateTime="2026-11-15 08:30:00+00:00"),  # the same instant
            row(
                emu, "GCLID-NOV-10", orderId="OPP-7", conversionDateTime="2026-11-16 10:00:00+00:00"
            ),
            row(emu, action=WON),  # the same click for another action is a new conversion
        ],
    ).json()

    assert row_errors(again) == [
        (0, {"conversionUploadError": "CLICK_CONVERSION_ALREADY_EXISTS"}),
        (1, {"conversionUploadError": "CLICK_CONVERSION_ALREADY_EXISTS"}),
        (2, {"conversionUploadError": "ORDER_ID_ALREADY_IN_USE"}),
    ]
    assert [(c.action_id, c.click_id) for c in emu.conversions] == [
        ("501", "GCLID-NOV-10"),
        ("501", "GCLID-OCT-01"),
        ("502", "GCLID-NOV-10"),
    ]


def test_duplicates_inside_one_request_all_fail(emu: Emulator) -> None:
    answer = upload(
        emu,
        [
            row(emu, orderId="OPP-1"),
            row(emu, "GCLID-OCT-01", orderId="OPP-1"),
            row(emu, "GCLID-OCT-01", conversionDateTime="2026-11-16 10:00:00+00:00"),
            row(emu, "GCLID-OCT-01", conversionDateTime="2026-11-16 10:00:00+00:00"),
        ],
    ).json()

    assert row_errors(answer) == [
        (0, {"conversionUploadError": "DUPLICATE_ORDER_ID"}),
        (1, {"conversionUploadError": "DUPLICATE_ORDER_ID"}),
        (2, {"conversionUploadError": "DUPLICATE_CLICK_CONVERSION_IN_REQUEST"}),
        (3, {"conversionUploadError": "DUPLICATE_CLICK_CONVERSION_IN_REQUEST"}),
    ]
    assert emu.conversions == []


def test_enhanced_conversions_for_leads_match_hashed_emails_to_clicks(emu: Emulator) -> None:
    emu.add_lead_identity(EMAIL, "GCLID-NOV-10")
    unknown = hashlib.sha256(b"nobody@example.com").hexdigest()
    granted = {"adUserData": "GRANTED"}

    answer = upload(
        emu,
        [
            row(emu, None, userIdentifiers=[{"hashedEmail": EMAIL}], consent=granted, orderId="L1"),
            row(emu, None, userIdentifiers=[{"hashedEmail": unknown}], orderId="L2"),
        ],
    ).json()

    assert row_errors(answer) == []
    assert answer["results"][0]["userIdentifiers"] == [{"hashedEmail": EMAIL}]
    matched, unmatched = emu.conversions
    assert matched.click is not None and matched.click.gclid == "GCLID-NOV-10"
    assert matched.consent == granted and matched.click_kind == "user_identifiers"
    # Without debugEnabled an unmatched lead is answered as a success (it may not come from an
    # ad); with it the API reports CLICK_NOT_FOUND.
    assert unmatched.click is None and unmatched.consent is None
    debug = upload(
        emu, [row(emu, None, userIdentifiers=[{"hashedEmail": unknown}])], debugEnabled=True
    ).json()
    assert row_errors(debug) == [(0, {"conversionUploadError": "CLICK_NOT_FOUND"})]


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        (
            "enhanced_conversions_for_leads_enabled",
            "CUSTOMER_NOT_ENABLED_ENHANCED_CONVERSIONS_FOR_LEADS",
        ),
        ("accepted_customer_data_terms", "CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS"),
    ],
)
def test_enhanced_conversions_need_the_account_settings(
    emu: Emulator, setting: str, reason: str
) -> None:
    setattr(emu, setting, False)
    answer = upload(emu, [row(emu, None, userIdentifiers=[{"hashedEmail": EMAIL}])]).json()
    assert row_errors(answer) == [(0, {"conversionUploadError": reason})]
    assert [r.reason for r in emu.rejected] == [reason]


def test_snake_case_fields_are_read_and_unknown_fields_fail_the_request(emu: Emulator) -> None:
    snake = {
        "gclid": "GCLID-NOV-10",
        "conversion_action": emu.conversion_action_name(LEAD),
        "conversion_date_time": "2026-11-15 09:30:00+00:00",
    }
    assert row_errors(upload(emu, [snake]).json()) == []

    response = upload(emu, [{**snake, "gclidd": "typo"}])

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "gclidd"' in error["message"] and "conversions[0]" in error["message"]
    assert len(emu.conversions) == 1


def test_validate_only_checks_rows_but_stores_nothing(emu: Emulator) -> None:
    answer = upload(emu, [row(emu), row(emu, "NOPE")], validateOnly=True).json()
    assert "results" not in answer
    assert row_errors(answer) == [(1, {"conversionUploadError": "UNPARSEABLE_GCLID"})]
    assert emu.conversions == [] and emu.rejected == []


@pytest.mark.parametrize("path", [":uploadClickConversions", ":uploadConversionAdjustments"])
@pytest.mark.parametrize("partial_failure", [False, None])
def test_partial_failure_mode_is_required(
    emu: Emulator, path: str, partial_failure: bool | None
) -> None:
    body: dict[str, Any] = (
        {"conversions": [row(emu)]}
        if "Click" in path
        else {"conversionAdjustments": [retraction(emu, orderId="OPP-1")]}
    )
    if partial_failure is not None:
        body["partialFailure"] = partial_failure
    response = requests.post(
        f"{emu.url}/v26/customers/{emu.customer_id}{path}",
        json=body,
        headers=headers(emu),
        timeout=10,
    )
    assert response.status_code == 400
    error = response.json()["error"]  # a unary method: a bare object, not a stream's list
    assert error["status"] == "INVALID_ARGUMENT"
    [failure] = error["details"][0]["errors"]
    assert failure["errorCode"] == {"partialFailureError": "PARTIAL_FAILURE_MODE_REQUIRED"}
    assert emu.conversions == [] and emu.rejected == []


def test_at_most_2000_conversions_per_request(emu: Emulator) -> None:
    def many(n: int) -> list[dict[str, Any]]:
        """``n`` distinct conversions of one click, a second apart."""
        times = (datetime(2026, 11, 15, tzinfo=UTC) + timedelta(seconds=i) for i in range(n))
        return [row(emu, conversionDateTime=f"{t:%Y-%m-%d %H:%M:%S}+00:00") for t in times]

    too_many = upload(emu, many(MAX_UPLOAD_ROWS + 1))
    assert too_many.status_code == 400
    [failure] = too_many.json()["error"]["details"][0]["errors"]
    assert failure["errorCode"] == {"conversionUploadError": "TOO_MANY_CONVERSIONS_IN_REQUEST"}
    assert emu.conversions == []

    assert row_errors(upload(emu, many(MAX_UPLOAD_ROWS)).json()) == []
    assert len(emu.conversions) == MAX_UPLOAD_ROWS == 2000


def test_auth_quota_and_customer_errors_apply_to_uploads(emu: Emulator) -> None:
    url = f"{emu.url}/v26/customers/{emu.customer_id}:uploadClickConversions"
    body = {"conversions": [row(emu)], "partialFailure": True}

    unauthenticated = requests.post(url, json=body, headers=headers(emu, "ya29.wrong"), timeout=10)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["details"][0]["errors"][0]["errorCode"] == {
        "authenticationError": "OAUTH_TOKEN_INVALID"
    }

    emu.inject("429", path_prefix="/v26/customers")
    throttled = requests.post(url, json=body, headers=headers(emu), timeout=10)
    assert throttled.status_code == 429
    [quota] = throttled.json()["error"]["details"][0]["errors"]
    assert quota["errorCode"] == {"quotaError": "RESOURCE_EXHAUSTED"}
    assert quota["details"]["quotaErrorDetails"]["retryDelay"] == "5s"

    foreign = requests.post(
        url.replace(emu.customer_id, "9999999999"), json=body, headers=headers(emu), timeout=10
    )
    assert foreign.status_code == 403
    assert emu.conversions == []


def test_conversion_actions_are_readable_with_gaql(emu: Emulator) -> None:
    def query(where: str = "") -> list[dict[str, Any]]:
        response = requests.post(
            f"{emu.url}/v26/customers/{emu.customer_id}/googleAds:searchStream",
            json={
                "query": "SELECT conversion_action.id, conversion_action.name, "
                "conversion_action.status, conversion_action.type FROM conversion_action" + where
            },
            headers=headers(emu),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return [
            r["conversionAction"] for batch in response.json() for r in batch.get("results", [])
        ]

    assert query()[0] == {
        "resourceName": "customers/1234567890/conversionActions/501",
        "id": "501",
        "name": "Lead created",
        "status": "ENABLED",
        "type": "UPLOAD_CLICKS",
    }
    assert [a["id"] for a in query(" WHERE conversion_action.status = 'ENABLED'")] == [
        "501",
        "502",
        "504",
    ]
    assert [a["name"] for a in query(" WHERE conversion_action.type IN ('WEBPAGE')")] == [
        "Website purchase"
    ]
    assert [a["id"] for a in query(" WHERE conversion_action.id = 502")] == ["502"]


# -- adjustments ---------------------------------------------------------------------------------
def restatement(
    emu: Emulator, value: float, at: str = "2026-11-19 10:00:00+00:00", **kw: Any
) -> dict[str, Any]:
    return {
        "adjustmentType": "RESTATEMENT",
        "conversionAction": emu.conversion_action_name(LEAD),
        "adjustmentDateTime": at,
        "restatementValue": {"adjustedValue": value, "currencyCode": "USD"},
        **kw,
    }


def retraction(emu: Emulator, at: str = "2026-11-19 10:00:00+00:00", **kw: Any) -> dict[str, Any]:
    return {
        "adjustmentType": "RETRACTION",
        "conversionAction": emu.conversion_action_name(LEAD),
        "adjustmentDateTime": at,
        **kw,
    }


@pytest.fixture
def uploaded(emu: Emulator) -> Emulator:
    """Two accepted conversions on 2026-11-15: one with an order ID, one keyed by its click."""
    answer = upload(
        emu,
        [
            row(emu, orderId="OPP-1", conversionValue=100),
            row(emu, "GCLID-OCT-01", conversionValue=5),
        ],
    ).json()
    assert row_errors(answer) == []
    return emu


def test_adjustments_restate_and_retract_accepted_conversions(uploaded: Emulator) -> None:
    emu = uploaded
    pair = {"gclid": "GCLID-OCT-01", "conversionDateTime": "2026-11-15 09:30:00+01:00"}

    answer = adjust(
        emu, [restatement(emu, 2500, orderId="OPP-1"), retraction(emu, gclidDateTimePair=pair)]
    ).json()

    assert row_errors(answer) == []
    assert answer["results"] == [
        {
            "orderId": "OPP-1",
            "conversionAction": "customers/1234567890/conversionActions/501",
            "adjustmentDateTime": "2026-11-19 10:00:00+00:00",
            "adjustmentType": "RESTATEMENT",
        },
        {
            "gclidDateTimePair": pair,
            "conversionAction": "customers/1234567890/conversionActions/501",
            "adjustmentDateTime": "2026-11-19 10:00:00+00:00",
            "adjustmentType": "RETRACTION",
        },
    ]
    restated, retracted = emu.conversions
    assert (restated.value, restated.retracted) == (2500, False)
    assert retracted.retracted
    assert [(a.adjustment_type, a.conversion.order_id) for a in emu.adjustments] == [
        ("RESTATEMENT", "OPP-1"),
        ("RETRACTION", None),
    ]


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        (None, {"orderId": "OPP-404"}, "CONVERSION_NOT_FOUND"),
        # A conversion uploaded with an order ID is found by that order ID only.
        (
            None,
            {
                "gclidDateTimePair": {
                    "gclid": "GCLID-NOV-10",
                    "conversionDateTime": "2026-11-15 09:30:00+01:00",
                }
            },
            "CONVERSION_NOT_FOUND",
        ),
        (
            None,
            {
                "orderId": "OPP-1",
                "gclidDateTimePair": {
                    "gclid": "GCLID-NOV-10",
                    "conversionDateTime": "2026-11-15 09:30:00+01:00",
                },
            },
            "GCLID_DATE_TIME_PAIR_AND_ORDER_ID_BOTH_SET",
        ),
        (
            None,
            {"orderId": "OPP-1", "adjustmentDateTime": "2026-11-14 10:00:00+00:00"},
            "ADJUSTMENT_PRECEDES_CONVERSION",
        ),
        (
            "retract",
            {"orderId": "OPP-1", "adjustmentDateTime": "2026-11-19 11:00:00+00:00"},
            "CONVERSION_ALREADY_RETRACTED",
        ),
        ("restate", {"orderId": "OPP-1"}, "RESTATEMENT_ALREADY_EXISTS"),
        (
            "restate",
            {"orderId": "OPP-1", "adjustmentDateTime": "2026-11-18 10:00:00+00:00"},
            "MORE_RECENT_RESTATEMENT_FOUND",
        ),
    ],
)
def test_adjustment_failures(
    uploaded: Emulator, first: str | None, second: dict[str, Any], reason: str
) -> None:
    emu = uploaded
    if first == "retract":
        assert row_errors(adjust(emu, [retraction(emu, orderId="OPP-1")]).json()) == []
    elif first == "restate":
        assert row_errors(adjust(emu, [restatement(emu, 50, orderId="OPP-1")]).json()) == []
    accepted_before = len(emu.adjustments)

    answer = adjust(emu, [restatement(emu, 75, **second)]).json()

    assert row_errors(answer) == [(0, {"conversionAdjustmentUploadError": reason})]
    assert answer["results"] == [{}]
    assert len(emu.adjustments) == accepted_before
    assert emu.rejected[-1].method == "uploadConversionAdjustments"
    assert emu.rejected[-1].reason == reason


def test_adjustments_respect_the_conversion_age(emu: Emulator) -> None:
    emu.add_click("GCLID-SEP", 9, date(2026, 9, 20))
    assert (
        row_errors(
            upload(
                emu,
                [
                    row(
                        emu,
                        "GCLID-SEP",
                        orderId="OLD",
                        conversionDateTime="2026-09-21 10:00:00+00:00",
                    ),
                    row(emu, orderId="FRESH", conversionDateTime="2026-11-20 06:00:00+00:00"),
                ],
            ).json()
        )
        == []
    )

    answer = adjust(
        emu,
        [
            retraction(emu, orderId="OLD"),
            retraction(emu, orderId="FRESH", at="2026-11-20 11:00:00+00:00"),
        ],
    ).json()

    assert row_errors(answer) == [
        (0, {"conversionAdjustmentUploadError": "CONVERSION_EXPIRED"}),
        (1, {"conversionAdjustmentUploadError": "TOO_RECENT_CONVERSION"}),
    ]


def test_the_same_adjustment_twice_in_one_request_fails_once(uploaded: Emulator) -> None:
    emu = uploaded
    answer = adjust(
        emu, [restatement(emu, 1, orderId="OPP-1"), restatement(emu, 2, orderId="OPP-1")]
    ).json()
    assert row_errors(answer) == [
        (1, {"conversionAdjustmentUploadError": "DUPLICATE_ADJUSTMENT_IN_REQUEST"})
    ]
    assert emu.conversions[0].value == 1


def test_at_most_2000_adjustments_per_request(uploaded: Emulator) -> None:
    emu = uploaded
    response = adjust(emu, [retraction(emu, orderId="OPP-1")] * (MAX_UPLOAD_ROWS + 1))
    assert response.status_code == 400
    [failure] = response.json()["error"]["details"][0]["errors"]
    assert failure["errorCode"] == {
        "conversionAdjustmentUploadError": "TOO_MANY_ADJUSTMENTS_IN_REQUEST"
    }
    assert emu.adjustments == []
