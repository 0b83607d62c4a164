"""Meta as a conversion sink (Conversions API through facebook-business), against the emulator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
import time_machine
from facebook_business.api import FacebookAdsApi

from adapters.meta_ads.adapter import MetaAdsSource
from adapters.meta_ads.emulator import MAX_EVENTS, Emulator
from connector.kernel.records import Conversion

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
PIXEL = "1234567890123456"
EMAIL = hashlib.sha256(b"ada@example.com").hexdigest()


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.add_pixel(PIXEL, "CRM events")
        yield emulator


def sink(emu: Emulator, **settings: object) -> MetaAdsSource:
    values = emu.adapter_settings() | {"pixel_id": PIXEL} | settings
    return MetaAdsSource(MetaAdsSource.Settings(**values))


def purchase(dedup_id: str, ago: timedelta = timedelta(days=1), **kw: object) -> Conversion:
    values: dict[str, object] = {
        "dedup_id": dedup_id, "destination": "Purchase", "occurred_at": NOW - ago,
        "value": 990.0, "currency": "EUR", "email_sha256": EMAIL,
    }  # fmt: skip
    return Conversion(**(values | kw))  # type: ignore[arg-type]


def sent_events(emu: Emulator) -> list[dict[str, object]]:
    events = []
    for req in emu.requests("POST", "/events"):
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        events += [json.loads(e) for e in json.loads(form["data"])]
    return events


def test_meta_normalisation_keeps_gmail_dots_and_hashes_phone_digits(emu: Emulator) -> None:
    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    meta = sink(emu)
    assert meta.hash_email(" Ada.Lovelace@GMail.com ") == sha("ada.lovelace@gmail.com")
    assert meta.hash_phone("16505551212") == sha("16505551212")


def test_the_pixel_is_checked_with_one_read(emu: Emulator) -> None:
    found = sink(emu).conversion_destinations(["Purchase", "Lead"])
    assert {k: (d.name, d.problem) for k, d in found.items()} == {
        "Purchase": ("CRM events", ""), "Lead": ("CRM events", "")
    }  # fmt: skip
    assert [r.path.rstrip("/") for r in emu.log] == [f"/v21.0/{PIXEL}"]
    unknown = sink(emu, pixel_id="999").conversion_destinations(["Lead"])["Lead"]
    assert "pixel 999 cannot be used" in unknown.problem and "does not exist" in unknown.problem
    missing = sink(emu, pixel_id=None).conversion_destinations(["Lead"])["Lead"]
    assert "no pixel_id" in missing.problem


def test_events_carry_the_documented_fields_and_count_once(emu: Emulator) -> None:
    phone = hashlib.sha256(b"16505551212").hexdigest()
    clicked = NOW - timedelta(days=3)
    conversions = [
        purchase("cl-won-1", phone_sha256=phone, fbclid="IwAR-click", fbclid_at=clicked),
        purchase("cl-won-2", email_sha256="", lead_id="120212345678901"),
    ]
    results = sink(emu).send_conversions(conversions)
    assert [(r.dedup_id, r.status) for r in results] == [
        ("cl-won-1", "accepted"), ("cl-won-2", "accepted")
    ]  # fmt: skip
    first, second = sent_events(emu)
    assert first == {
        "event_name": "Purchase", "event_time": int((NOW - timedelta(days=1)).timestamp()),
        "event_id": "cl-won-1", "action_source": "system_generated",
        "user_data": {"em": [EMAIL], "ph": [phone],
                      "fbc": f"fb.1.{int(clicked.timestamp() * 1000)}.IwAR-click"},
        "custom_data": {"value": 990.0, "currency": "eur"},
    }  # fmt: skip
    assert second["user_data"] == {"lead_id": "120212345678901"}
    sink(emu).send_conversions(conversions)  # a re-send after a crash: the same event_ids
    assert [e.event_id for e in emu.events_for(PIXEL)] == ["cl-won-1", "cl-won-2"]
    assert emu.pixels[PIXEL].stats.deduplicated == 2


def test_one_bad_event_is_found_and_rejected_alone(emu: Emulator) -> None:
    conversions = [purchase(f"cl-won-{n}") for n in range(7)]
    conversions[5] = purchase("cl-won-5", ago=timedelta(days=8))  # older than Meta takes
    results = sink(emu).send_conversions(conversions)
    assert [r.status for r in results] == ["accepted"] * 5 + ["rejected", "accepted"]
    assert results[5].reason.startswith("Event Timestamp Too Old: ")
    assert sorted(e.event_id for e in emu.events_for(PIXEL)) == sorted(
        f"cl-won-{n}" for n in (0, 1, 2, 3, 4, 6)
    )


def test_batches_of_at_most_1000_events(emu: Emulator) -> None:
    sizes: list[int] = []
    many = [purchase(f"cl-won-{n}") for n in range(MAX_EVENTS + 1)]
    sink(emu).send_conversions(many, on_batch=lambda r: sizes.append(len(r)))
    assert sizes == [MAX_EVENTS, 1]
    assert len(emu.requests("POST", "/events")) == 2
    assert len(emu.events_for(PIXEL)) == MAX_EVENTS + 1


def test_test_event_code_sends_test_events_only(emu: Emulator) -> None:
    meta = sink(emu, test_event_code="TEST4242")
    assert meta.test_mode
    results = meta.send_conversions([purchase("cl-won-1")])
    assert [r.status for r in results] == ["test"]
    assert emu.events_for(PIXEL) == [] and [e.test_event_code for e in emu.test_events] == [
        "TEST4242"
    ]


def test_the_sdk_default_api_is_left_alone(emu: Emulator) -> None:
    before = FacebookAdsApi.get_default_api()
    sink(emu).send_conversions([purchase("cl-won-1")])
    assert FacebookAdsApi.get_default_api() is before
