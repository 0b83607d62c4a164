"""LinkedIn as a conversion sink (Conversions API, batch create), against the emulator."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from adapters.linkedin_ads.adapter import LinkedInAdsSource
from adapters.linkedin_ads.conversions import failing_indices
from adapters.linkedin_ads.emulator import Emulator
from connector.kernel.errors import ConfigError
from connector.kernel.records import Conversion

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
EMAIL = hashlib.sha256(b"ada@example.com").hexdigest()


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.add_conversion_rule(101, "Won", "PURCHASE")
        emulator.add_conversion_rule(102, "Insight tag", conversion_method="INSIGHT_TAG")
        emulator.add_conversion_rule(103, "Paused", enabled=False)
        yield emulator


@pytest.fixture
def sink(emu: Emulator) -> LinkedInAdsSource:
    return LinkedInAdsSource(LinkedInAdsSource.Settings(**emu.adapter_settings()))


def won(dedup_id: str, ago: timedelta = timedelta(days=2), **kw: object) -> Conversion:
    values: dict[str, object] = {
        "dedup_id": dedup_id, "destination": "101", "occurred_at": NOW - ago,
        "value": 1200.0, "currency": "USD", "email_sha256": EMAIL,
    }  # fmt: skip
    return Conversion(**(values | kw))  # type: ignore[arg-type]


def test_rules_are_read_once_and_problems_named(emu: Emulator, sink: LinkedInAdsSource) -> None:
    found = sink.conversion_destinations(["101", "102", "103", "999"])
    assert len(emu.requests("GET", "/rest/conversions")) == 1
    assert (found["101"].name, found["101"].problem) == ("Won", "")
    assert "INSIGHT_TAG, not CONVERSIONS_API" in found["102"].problem
    assert "is disabled" in found["103"].problem
    assert "does not exist in ad account" in found["999"].problem


def test_batch_create_carries_the_documented_element_and_counts_once(
    emu: Emulator, sink: LinkedInAdsSource
) -> None:
    results = sink.send_conversions([won("cl-won-1", li_fat_id="a1b2-c3"), won("cl-won-2")])
    assert [r.status for r in results] == ["accepted", "accepted"]
    (request,) = emu.requests("POST", "/rest/conversionEvents")
    assert request.headers["x-restli-method"] == "BATCH_CREATE"
    assert request.json()["elements"][0] == {
        "conversion": "urn:lla:llaPartnerConversion:101",
        "conversionHappenedAt": int((NOW - timedelta(days=2)).timestamp() * 1000),
        "eventId": "cl-won-1",
        "user": {"userIds": [
            {"idType": "SHA256_EMAIL", "idValue": EMAIL},
            {"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": "a1b2-c3"},
        ]},
        "conversionValue": {"currencyCode": "USD", "amount": "1200.00"},
    }  # fmt: skip
    sink.send_conversions([won("cl-won-1")])  # a re-send after a crash
    assert [e.event_id for e in emu.events_for(101)] == ["cl-won-1", "cl-won-2"]
    assert emu.events_deduplicated == 1


def test_a_refused_event_is_rejected_and_the_others_sent(
    emu: Emulator, sink: LinkedInAdsSource
) -> None:
    conversions = [won("cl-won-0"), won("cl-won-1", ago=timedelta(days=100)), won("cl-won-2")]
    results = sink.send_conversions(conversions)
    assert [r.status for r in results] == ["accepted", "rejected", "accepted"]
    assert results[1].reason == "conversionHappenedAt should be within the last 90 days"
    assert [e.event_id for e in emu.events_for(101)] == ["cl-won-0", "cl-won-2"]


def test_a_token_without_rw_conversions_is_a_configuration_error(
    emu: Emulator, sink: LinkedInAdsSource
) -> None:
    emu.token_scopes = {"r_ads", "r_ads_reporting"}
    with pytest.raises(ConfigError, match="rw_conversions"):
        sink.send_conversions([won("cl-won-1")])
    assert emu.conversion_events == []


def test_failing_indices_of_both_error_shapes() -> None:
    assert failing_indices(
        "Incorrect conversions information provided. Conversion rule does not exist in the ad "
        "account, indices [0, 3] (0-indexed); conversionHappenedAt should be within the last 90 "
        "days, indices [1] (0-indexed)"
    ) == {
        0: "Conversion rule does not exist in the ad account",
        3: "Conversion rule does not exist in the ad account",
        1: "conversionHappenedAt should be within the last 90 days",
    }
    assert failing_indices(
        "Index: 2, ERROR :: /conversionValue/amount :: field is required\nIndex: 4, ERROR :: "
        "/user :: field is required\n"
    ) == {
        2: "ERROR :: /conversionValue/amount :: field is required",
        4: "ERROR :: /user :: field is required",
    }
