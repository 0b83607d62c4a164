"""The same suite for every source that also takes conversions back (a ConversionSink), against
its emulator: its destinations are checked before any send, a conversion sent twice counts
once, 401 is a configuration error, 429 is retried, nothing to send sends nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

import adapters
from connector.kernel.errors import ConfigError
from connector.kernel.records import Conversion

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)  # the emulators' sample data end the day before
SINKS = sorted(adapters.SINKS)
# Per platform: a destination its seed_sample creates, and the emulator's accepted records.
DESTINATION = {"google_ads": "7003", "meta_ads": "Purchase", "linkedin_ads": "14488003"}
ACCEPTED: dict[str, Callable[[Any], list[str]]] = {
    "google_ads": lambda emu: [c.order_id for c in emu.conversions],
    "meta_ads": lambda emu: [e.event_id for e in emu.server_events],
    "linkedin_ads": lambda emu: [e.event_id for e in emu.conversion_events],
}


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture(params=SINKS)
def sink(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, Any]]:
    emu = adapters.emulator_class(request.param)()
    emu.seed_sample()
    emu.start()
    cls = adapters.source_class(request.param)
    yield request.param, emu, cls(cls.Settings(**emu.adapter_settings()))
    emu.stop()


def conversion(kind: str, dedup_id: str = "cl-won-contract") -> Conversion:
    return Conversion(
        dedup_id=dedup_id,
        destination=DESTINATION[kind],
        occurred_at=NOW - timedelta(hours=1),
        value=1500.0,
        currency="USD",
        gclid="EAIaIQobChMI-sample-001" if kind == "google_ads" else "",
        email_sha256=hashlib.sha256(b"contract@example.com").hexdigest(),
        li_fat_id="li-fat-contract" if kind == "linkedin_ads" else "",
    )


def test_sinks_declare_their_limits(sink: tuple[str, Any, Any]) -> None:
    _, _, adapter = sink
    assert adapter.max_conversions >= 1
    assert adapter.event_max_age >= timedelta(days=1)
    assert isinstance(adapter.adjustable, bool) and isinstance(adapter.test_mode, bool)


def test_destinations_are_checked_and_unknown_ones_named(sink: tuple[str, Any, Any]) -> None:
    kind, _, adapter = sink
    found = adapter.conversion_destinations([DESTINATION[kind]])
    assert found[DESTINATION[kind]].problem == ""
    if kind != "meta_ads":  # Meta's destination is an event name: any name is valid
        assert adapter.conversion_destinations(["424242"])["424242"].problem


def test_a_conversion_sent_twice_is_accepted_once(sink: tuple[str, Any, Any]) -> None:
    kind, emu, adapter = sink
    first = adapter.send_conversions([conversion(kind)])
    again = adapter.send_conversions([conversion(kind)])
    assert [r.status for r in first + again] == ["accepted", "accepted"]
    assert ACCEPTED[kind](emu) == ["cl-won-contract"]


def test_sending_nothing_sends_no_request(sink: tuple[str, Any, Any]) -> None:
    _, emu, adapter = sink
    emu.clear_log()
    assert adapter.send_conversions([]) == []
    assert emu.log == []


def test_sink_bad_token_is_config_error(sink: tuple[str, Any, Any]) -> None:
    kind, emu, adapter = sink
    cls = type(adapter)
    bad = cls(cls.Settings(**emu.adapter_settings(valid_token=False)))
    with pytest.raises(ConfigError):
        bad.send_conversions([conversion(kind)])
    assert ACCEPTED[kind](emu) == []


def test_sink_429_is_retried(sink: tuple[str, Any, Any]) -> None:
    kind, emu, adapter = sink
    emu.inject("429", count=2)
    assert [r.status for r in adapter.send_conversions([conversion(kind)])] == ["accepted"]
    assert ACCEPTED[kind](emu) == ["cl-won-contract"]
