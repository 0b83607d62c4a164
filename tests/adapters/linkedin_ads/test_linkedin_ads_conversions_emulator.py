"""The LinkedIn emulator's Conversions API, over HTTP as a requests-based sender calls it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
import time_machine

from adapters.linkedin_ads.emulator import MAX_BATCH_EVENTS, Emulator
from connector.kernel.timeutil import to_epoch_ms

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
LEAD_RULE, TAG_RULE, OFF_RULE = 14488001, 14488002, 14488003
EMAIL_HASH = hashlib.sha256(b"ada@example.com").hexdigest()


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.add_conversion_rule(LEAD_RULE, "CRM lead created")
        emulator.add_conversion_rule(
            TAG_RULE,
            "Demo page",
            "BOOK_APPOINTMENT",
            conversion_method="INSIGHT_TAG_URL_MATCH_RULES",
        )
        emulator.add_conversion_rule(OFF_RULE, "Paused", "PURCHASE", enabled=False)
        yield emulator


def headers(emu: Emulator, batch: bool = True) -> dict[str, str]:
    sent = {
        "Authorization": f"Bearer {emu.access_token}",
        "LinkedIn-Version": "202611",
        "X-Restli-Protocol-Version": "2.0.0",
    }
    if batch:
        sent["X-RestLi-Method"] = "BATCH_CREATE"
    return sent


def element(
    rule: int = LEAD_RULE,
    ago: timedelta = timedelta(days=1),
    event_id: str | None = "evt-1",
    **kw: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "conversion": f"urn:lla:llaPartnerConversion:{rule}",
        "conversionHappenedAt": to_epoch_ms(NOW - ago),
        "conversionValue": {"currencyCode": "USD", "amount": "1500.0"},
        "user": {
            "userIds": [
                {"idType": "SHA256_EMAIL", "idValue": EMAIL_HASH},
                {"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": "df5gf5-gh6t7"},
            ],
            "userInfo": {"firstName": "Ada", "lastName": "Lovelace", "companyName": "Engines"},
        },
        **kw,
    }
    if event_id:
        event["eventId"] = event_id
    return event


def post(emu: Emulator, elements: list[dict[str, Any]], **extra: str) -> requests.Response:
    return requests.post(
        f"{emu.url}/rest/conversionEvents",
        json={"elements": elements},
        headers={**headers(emu), **extra},
        timeout=30,
    )


def test_batch_create_answers_201_per_element_and_keeps_the_events(emu: Emulator) -> None:
    response = post(emu, [element(), element(event_id="evt-2", conversionValue=None)])

    assert response.status_code == 200
    assert response.json() == {"elements": [{"status": 201}, {"status": 201}]}
    assert response.headers["x-restli-protocol-version"] == "2.0.0"
    first, second = emu.events_for(LEAD_RULE)
    assert (first.event_id, first.happened_at, first.amount, first.currency) == (
        "evt-1",
        NOW - timedelta(days=1),
        Decimal("1500.0"),
        "USD",
    )
    assert first.user_ids["SHA256_EMAIL"] == EMAIL_HASH
    assert first.user_info["companyName"] == "Engines"
    assert (second.amount, second.currency) == (None, None)
    assert emu.events_received == 2


def test_a_single_create_is_201_without_a_body(emu: Emulator) -> None:
    response = requests.post(
        f"{emu.url}/rest/conversionEvents",
        json=element(),
        headers=headers(emu, batch=False),
        timeout=10,
    )
    assert response.status_code == 201
    assert response.content == b""
    assert [e.event_id for e in emu.conversion_events] == ["evt-1"]


def test_the_same_event_id_for_a_rule_counts_once(emu: Emulator) -> None:
    assert post(emu, [element(), element()]).status_code == 200  # a repeat inside one request
    again = post(
        emu, [element(), element(OFF_RULE), element(event_id=None), element(event_id=None)]
    )

    assert again.json() == {"elements": [{"status": 201}] * 4}  # a duplicate is still accepted
    assert [(e.rule_id, e.event_id) for e in emu.conversion_events] == [
        ("14488001", "evt-1"),
        ("14488003", "evt-1"),
        ("14488001", None),
        ("14488001", None),
    ]
    assert (emu.events_received, emu.events_deduplicated) == (6, 2)


def test_schema_errors_fail_the_whole_request_with_422(emu: Emulator) -> None:
    no_amount = element(conversionValue={"currencyCode": "USD"})
    nameless = element()
    del nameless["user"]["userInfo"]["lastName"]
    numeric = element(conversionValue={"currencyCode": "USD", "amount": 1500})

    response = post(emu, [element(), no_amount, nameless, numeric])

    assert response.status_code == 422
    body = response.json()
    assert body["status"] == 422
    assert body["message"] == (
        "Index: 1, ERROR :: /conversionValue/amount :: "
        "field is required but not found and has no default value\n"
        "Index: 2, ERROR :: /user/userInfo/lastName :: "
        "field is required but not found and has no default value\n"
        "Index: 3, ERROR :: /conversionValue/amount :: 1500 is not a string\n"
    )
    assert emu.conversion_events == [] and emu.events_received == 0


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (element(999), "Conversion rule does not exist in the ad account"),
        (element(TAG_RULE), "Conversion's method should be CONVERSIONS_API"),
        (element(ago=timedelta(days=91)), "conversionHappenedAt should be within the last 90 days"),
        (
            element(ago=-timedelta(hours=1)),
            "conversionHappenedAt should be within the last 90 days",
        ),
        (
            element(user={"userIds": [{"idType": "SHA256_EMAIL", "idValue": "ada@example.com"}]}),
            "user needs a valid SHA256_EMAIL",
        ),
        (element(user={"userIds": []}), "user needs a valid SHA256_EMAIL"),
    ],
)
def test_rule_and_event_problems_fail_the_whole_request_with_400(
    emu: Emulator, bad: dict[str, Any], reason: str
) -> None:
    response = post(emu, [element(event_id="ok"), bad])

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert body["message"].startswith(f"Incorrect conversions information provided. {reason}")
    assert body["message"].endswith("indices [1] (0-indexed)")
    assert emu.conversion_events == []


def test_at_most_5000_events_per_batch(emu: Emulator) -> None:
    events = [element(event_id=f"evt-{i}") for i in range(MAX_BATCH_EVENTS + 1)]

    too_many = post(emu, events)
    assert too_many.status_code == 400
    assert "5000" in too_many.json()["message"]
    assert emu.conversion_events == []

    accepted = post(emu, events[:MAX_BATCH_EVENTS])
    assert accepted.status_code == 200 and len(accepted.json()["elements"]) == 5000
    assert len(emu.conversion_events) == 5000


def test_conversion_rules_are_readable(emu: Emulator) -> None:
    account = f"urn%3Ali%3AsponsoredAccount%3A{emu.account_id}"

    rule = requests.get(
        f"{emu.url}/rest/conversions/{LEAD_RULE}?account={account}",
        headers=headers(emu, False),
        timeout=10,
    )
    assert rule.status_code == 200
    assert {
        k: rule.json()[k] for k in ("id", "name", "conversionMethod", "enabled", "type", "account")
    } == {
        "id": LEAD_RULE,
        "name": "CRM lead created",
        "conversionMethod": "CONVERSIONS_API",
        "enabled": True,
        "type": "LEAD",
        "account": f"urn:li:sponsoredAccount:{emu.account_id}",
    }

    listed = requests.get(
        f"{emu.url}/rest/conversions?q=account&account={account}",
        headers=headers(emu, False),
        timeout=10,
    )
    assert [(r["id"], r["enabled"]) for r in listed.json()["elements"]] == [
        (LEAD_RULE, True),
        (TAG_RULE, True),
        (OFF_RULE, False),
    ]

    unknown = requests.get(
        f"{emu.url}/rest/conversions/404", headers=headers(emu, False), timeout=10
    )
    assert unknown.status_code == 404
    other = requests.get(
        f"{emu.url}/rest/conversions/{LEAD_RULE}?account=urn%3Ali%3AsponsoredAccount%3A1",
        headers=headers(emu, False),
        timeout=10,
    )
    assert other.status_code == 403


def test_without_the_rw_conversions_scope_it_is_403(emu: Emulator) -> None:
    emu.token_scopes = {"r_ads", "r_ads_reporting"}

    response = post(emu, [element()])

    assert response.status_code == 403
    assert response.json() == {
        "status": 403,
        "code": "ACCESS_DENIED",
        "message": "Not enough permissions to access: conversionEvents.BATCH_CREATE.202611",
        "serviceErrorCode": 100,
    }
    rule = requests.get(
        f"{emu.url}/rest/conversions/{LEAD_RULE}", headers=headers(emu, False), timeout=10
    )
    assert rule.status_code == 403
    assert emu.conversion_events == []


def test_token_version_and_throttling_errors_apply(emu: Emulator) -> None:
    invalid = post(emu, [element()], Authorization="Bearer AQV-revoked")
    assert (invalid.status_code, invalid.json()["code"]) == (401, "INVALID_ACCESS_TOKEN")

    no_version = requests.post(
        f"{emu.url}/rest/conversionEvents",
        json={"elements": [element()]},
        headers={k: v for k, v in headers(emu).items() if k != "LinkedIn-Version"},
        timeout=10,
    )
    assert (no_version.status_code, no_version.json()["code"]) == (400, "VERSION_MISSING")

    emu.inject("429", path_prefix="/rest/conversionEvents")
    throttled = post(emu, [element()])
    assert (throttled.status_code, throttled.json()["code"]) == (429, "TOO_MANY_REQUESTS")

    assert emu.conversion_events == []
    assert post(emu, [element()]).status_code == 200  # the next call goes through
