"""Google Ads as a conversion sink, against the emulator: uploads, partial failures, adjustments."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from adapters.google_ads.adapter import GoogleAdsSource
from adapters.google_ads.emulator import MAX_UPLOAD_ROWS, Emulator
from connector.kernel.records import Conversion, ConversionAdjustment

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
LEAD, WON, REMOVED, WEB = "501", "502", "503", "504"


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.add_campaign(9, "Spring Sale")
        emulator.add_click("GCLID-NOV-10", 9, date(2026, 11, 10))
        emulator.add_click("GCLID-AUG-01", 9, date(2026, 8, 1))
        emulator.add_click("GCLID-NOW", 9, date(2026, 11, 20), at=NOW - timedelta(hours=1))
        emulator.add_click("GBRAID-1", 9, date(2026, 11, 10), kind="gbraid")
        emulator.add_conversion_action(LEAD, "Lead created")
        emulator.add_conversion_action(WON, "Closed won", click_through_lookback_window_days=60)
        emulator.add_conversion_action(REMOVED, "Old action", status="REMOVED")
        emulator.add_conversion_action(WEB, "Website purchase", type="WEBPAGE")
        yield emulator


@pytest.fixture
def sink(emu: Emulator) -> GoogleAdsSource:
    return GoogleAdsSource(GoogleAdsSource.Settings(**emu.adapter_settings()))


def won(dedup_id: str, gclid: str = "GCLID-NOV-10", **kw: object) -> Conversion:
    values: dict[str, object] = {
        "dedup_id": dedup_id, "destination": WON, "occurred_at": NOW - timedelta(days=2),
        "value": 1200.5, "currency": "EUR", "gclid": gclid,
    }  # fmt: skip
    return Conversion(**(values | kw))  # type: ignore[arg-type]


def test_google_normalisation_drops_gmail_dots_and_keeps_the_plus_of_phones(
    sink: GoogleAdsSource,
) -> None:
    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    assert sink.hash_email(" Ada.Lovelace+ads@GMail.com ") == sha("adalovelace+ads@gmail.com")
    assert sink.hash_email("ada.lovelace@example.com") == sha("ada.lovelace@example.com")
    assert sink.hash_phone("16505551212") == sha("+16505551212")


def test_destinations_are_read_with_one_query_and_problems_named(
    emu: Emulator, sink: GoogleAdsSource
) -> None:
    emu.clear_log()
    found = sink.conversion_destinations(
        [WON, REMOVED, WEB, "999", "customers/1/conversionActions/502"]
    )
    assert len(emu.requests("POST", "googleAds:searchStream")) == 1
    assert (found[WON].name, found[WON].problem, found[WON].click_window_days) == (
        "Closed won", "", 60
    )  # fmt: skip
    assert "is REMOVED" in found[REMOVED].problem
    assert "UPLOAD_CLICKS" in found[WEB].problem
    assert "does not exist" in found["999"].problem
    assert "belongs to customer 1" in found["customers/1/conversionActions/502"].problem


def test_upload_sends_the_documented_row_and_answers_per_row(
    emu: Emulator, sink: GoogleAdsSource
) -> None:
    email = hashlib.sha256(b"ada@example.com").hexdigest()
    conversions = [
        won("cl-won-1"),
        won("cl-won-2", gclid="GCLID-UNKNOWN"),
        won("cl-won-3", gclid="GCLID-AUG-01"),  # older than the action's 60-day window
        won("cl-won-4", gclid="GCLID-NOW", occurred_at=NOW),  # click under 6 h old: later
        won("cl-won-5", gclid="", gbraid="GBRAID-1", consent=True),
        won("cl-lead-6", gclid="", destination=LEAD, value=None, email_sha256=email),
    ]
    batches: list[list[str]] = []
    results = sink.send_conversions(
        conversions, on_batch=lambda r: batches.append([x.status for x in r])
    )

    assert [(r.dedup_id, r.status) for r in results] == [

        ("cl-won-1", "accepted"), ("cl-won-2", "rejected"), ("cl-won-3", "rejected"),
        ("cl-won-4", "retry"), ("cl-won-5", "accepted"), ("cl-lead-6", "accepted"),
    ]  # fmt: skip
    assert results[1].reason.startswith("UNPARSEABLE_GCLID: ")
    assert results[2].reason.startswith("EXPIRED_EVENT: ")
    assert batches == [[r.status for r in results]]
    body = emu.requests("POST", ":uploadClickConversions")[0].json()
    assert body["partialFailure"] is True
    assert body["conversions"][0] == {
        "conversionAction": emu.conversion_action_name(WON),
        "conversionDateTime": "2026-11-18 12:00:00+00:00",
        "orderId": "cl-won-1", "conversionValue": 1200.5, "currencyCode": "EUR",
        "gclid": "GCLID-NOV-10",
    }  # fmt: skip
    assert body["conversions"][4]["gbraid"] == "GBRAID-1"
    assert body["conversions"][4]["consent"] == {"adUserData": "GRANTED"}
    assert body["conversions"][5]["userIdentifiers"] == [{"hashedEmail": email}]
    accepted = {c.order_id: c for c in emu.conversions}
    assert set(accepted) == {"cl-won-1", "cl-won-5", "cl-lead-6"}
    assert accepted["cl-won-1"].value == 1200.5 and accepted["cl-won-1"].currency == "EUR"


def test_a_resend_after_a_crash_is_accepted_and_counted_once(
    emu: Emulator, sink: GoogleAdsSource
) -> None:
    sink.send_conversions([won("cl-won-1")])
    again = sink.send_conversions([won("cl-won-1")])
    assert [(r.status, r.reason) for r in again] == [
        ("accepted", "already recorded (ORDER_ID_ALREADY_IN_USE)")
    ]
    assert [c.order_id for c in emu.conversions] == ["cl-won-1"]


def test_batches_stay_within_the_api_limit(emu: Emulator, sink: GoogleAdsSource) -> None:
    many = [won(f"cl-lead-{n}", gclid="", destination=LEAD, value=None,
                email_sha256=hashlib.sha256(f"p{n}@example.com".encode()).hexdigest())
            for n in range(MAX_UPLOAD_ROWS + 1)]  # fmt: skip
    sizes: list[int] = []
    results = sink.send_conversions(many, on_batch=lambda r: sizes.append(len(r)))
    assert sizes == [MAX_UPLOAD_ROWS, 1]
    assert {r.status for r in results} == {"accepted"}
    assert len(emu.conversions) == MAX_UPLOAD_ROWS + 1


def test_restatement_and_retraction_by_order_id_resend_included(
    emu: Emulator, sink: GoogleAdsSource
) -> None:
    sink.send_conversions([won("cl-won-1"), won("cl-won-2", gclid="GBRAID-1", gbraid="")])
    at = NOW - timedelta(minutes=5)
    restate = ConversionAdjustment("cl-won-1", WON, at, 900.0, "EUR")
    retract = ConversionAdjustment("cl-won-2", WON, at, None)
    results = sink.adjust_conversions([restate, retract])
    assert [r.status for r in results] == ["accepted", "rejected"]
    assert results[1].reason.startswith("CONVERSION_NOT_FOUND")  # GBRAID-1 is no gclid
    again = sink.adjust_conversions([restate])
    assert again[0].status == "accepted" and "RESTATEMENT_ALREADY_EXISTS" in again[0].reason
    body = emu.requests("POST", ":uploadConversionAdjustments")[0].json()
    assert body["conversionAdjustments"][0] == {
        "adjustmentType": "RESTATEMENT", "conversionAction": emu.conversion_action_name(WON),
        "orderId": "cl-won-1", "adjustmentDateTime": "2026-11-20 11:55:00+00:00",
        "restatementValue": {"adjustedValue": 900.0, "currencyCode": "EUR"},
    }  # fmt: skip
    assert [c.value for c in emu.conversions if c.order_id == "cl-won-1"] == [900.0]
    gone = sink.adjust_conversions([ConversionAdjustment("cl-won-1", WON, NOW, None)])
    twice = sink.adjust_conversions([ConversionAdjustment("cl-won-1", WON, NOW, None)])
    assert [gone[0].status, twice[0].status] == ["accepted", "accepted"]
    assert next(c for c in emu.conversions if c.order_id == "cl-won-1").retracted
