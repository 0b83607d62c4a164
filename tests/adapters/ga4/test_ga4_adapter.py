"""Ga4Source through the real google-analytics-data client against the local GA4 emulator."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.api_core.exceptions import TooManyRequests
from pydantic import ValidationError

import connector.kernel.retry
from adapters._emulator import Response
from adapters.ga4.adapter import Ga4Source, classify
from adapters.ga4.emulator import Emulator
from connector.kernel.errors import BudgetExhausted, ConfigError, TransientError
from connector.kernel.records import IdentityKind

NY = ZoneInfo("America/New_York")
SINCE = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connector.kernel.retry, "BACKOFF_SCALE", 0.01)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as server:
        yield server


@pytest.fixture
def source_for() -> Iterator[Any]:
    opened: list[Ga4Source] = []

    def build(server: Emulator, **overrides: Any) -> Ga4Source:
        settings = {**server.adapter_settings(), **overrides}
        source = Ga4Source(Ga4Source.Settings(**settings))
        opened.append(source)
        return source

    yield build
    for source in opened:
        source.close()


def seed_days(server: Emulator, count: int, first: datetime) -> None:
    server.add_sessions(
        (f"cid.{i}", first + timedelta(hours=i), "google", "cpc", f"camp{i % 3}", f"/p{i}")
        for i in range(count)
    )


def report_requests(server: Emulator) -> list[dict[str, Any]]:
    return [r.json() for r in server.requests("POST", ":runReport")]


def test_pages_through_every_row(emu: Emulator, source_for: Any) -> None:
    seed_days(emu, 25, datetime(2026, 11, 5, tzinfo=UTC))
    source = source_for(emu, page_size=7)

    touchpoints = list(source.touchpoints(SINCE))

    assert sorted(t.identity_value for t in touchpoints) == sorted(f"cid.{i}" for i in range(25))
    assert len({t.key for t in touchpoints}) == 25
    bodies = report_requests(emu)
    assert [b.get("offset") for b in bodies] == [None, "7", "14", "21"]
    assert {b["limit"] for b in bodies} == {"7"}
    assert source.api_calls() == 4


def test_touchpoint_fields_and_time_zone(emu: Emulator, source_for: Any) -> None:
    late_evening = datetime(2026, 11, 10, 23, 30, tzinfo=NY)
    emu.add_session("111.222", late_evening, "newsletter", "email", "nov", "/webinar", "u-1")
    source = source_for(emu)

    [touchpoint] = list(source.touchpoints(SINCE))

    assert touchpoint.occurred_at == datetime(2026, 11, 11, 4, 30, tzinfo=UTC)
    assert touchpoint.occurred_at.tzinfo is UTC
    assert touchpoint.source == "ga4"
    assert touchpoint.identity_kind is IdentityKind.GA_CLIENT_ID
    assert touchpoint.identity_value == "111.222"
    assert (touchpoint.utm_source, touchpoint.utm_medium, touchpoint.utm_campaign) == (
        "newsletter",
        "email",
        "nov",
    )
    assert touchpoint.landing_page == "/webinar"


def test_time_zone_comes_from_the_response(source_for: Any) -> None:
    with Emulator(time_zone="Asia/Tokyo") as server:
        server.add_session("1.1", datetime(2026, 11, 10, 8, 15, tzinfo=UTC), "google", "organic")
        [touchpoint] = list(source_for(server).touchpoints(SINCE))
    assert touchpoint.occurred_at == datetime(2026, 11, 10, 8, 15, tzinfo=UTC)


def test_since_filters_older_sessions(emu: Emulator, source_for: Any) -> None:
    since = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    for minutes in (-24 * 60 * 3, -90, -1, 0, 1, 60 * 30):
        emu.add_session(f"c{minutes}", since + timedelta(minutes=minutes), "google", "organic")

    touchpoints = list(source_for(emu).touchpoints(since))

    assert sorted(t.identity_value for t in touchpoints) == ["c0", "c1", "c1800"]
    [body] = report_requests(emu)
    assert body["dateRanges"] == [{"startDate": "2026-11-09", "endDate": "today"}]


def test_since_must_be_aware(emu: Emulator, source_for: Any) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(source_for(emu).touchpoints(datetime(2026, 11, 1)))  # noqa: DTZ001


def test_rows_without_identity_are_skipped(
    emu: Emulator, source_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    at = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
    emu.add_session("", at, "(direct)", "(none)")
    emu.add_session("", at + timedelta(hours=1), "google", "organic")
    emu.add_session("42.42", at, "google", "organic")
    source = source_for(emu)

    with caplog.at_level(logging.INFO, logger="adapters.ga4.adapter"):
        touchpoints = list(source.touchpoints(SINCE))

    assert [t.identity_value for t in touchpoints] == ["42.42"]
    assert source.skipped_without_identity == 2
    assert "skipped 2 rows" in caplog.text


def test_several_sessions_in_one_row_make_one_touchpoint(emu: Emulator, source_for: Any) -> None:
    at = datetime(2026, 11, 12, 9, 0, 20, tzinfo=UTC)
    emu.add_session("7.7", at, "google", "cpc", "brand", "/")
    emu.add_session("7.7", at + timedelta(seconds=30), "google", "cpc", "brand", "/")

    touchpoints = list(source_for(emu).touchpoints(SINCE))

    assert len(touchpoints) == 1


def test_rereading_yields_the_same_keys(emu: Emulator, source_for: Any) -> None:
    emu.seed_sample()
    first = list(source_for(emu).touchpoints(datetime(2026, 10, 1, tzinfo=UTC)))
    again = list(source_for(emu, page_size=4).touchpoints(datetime(2026, 10, 1, tzinfo=UTC)))

    assert len(first) == 30
    assert [t.key for t in first] == [t.key for t in again]
    assert first == again


def test_user_id_as_identity(emu: Emulator, source_for: Any) -> None:
    emu.add_session("1.1", datetime(2026, 11, 3, tzinfo=UTC), "google", "organic", user_id="u-9")
    emu.add_session("2.2", datetime(2026, 11, 3, tzinfo=UTC), "google", "organic")
    source = source_for(
        emu, identity_dimension="customUser:user_id", identity_kind=IdentityKind.USER_ID
    )

    [touchpoint] = list(source.touchpoints(SINCE))

    assert (touchpoint.identity_kind, touchpoint.identity_value) == (IdentityKind.USER_ID, "u-9")


def test_missing_identity_dimension_is_a_config_error(source_for: Any) -> None:
    with Emulator(custom_dimensions=()) as server:
        source = source_for(server)
        with pytest.raises(ConfigError, match="customUser:ga_client_id") as info:
            list(source.touchpoints(SINCE))
        assert "Custom definitions" in str(info.value)
        assert len(server.requests("POST")) == 1  # not retried
        problems = source.check()
    assert len(problems) == 1 and "customUser:ga_client_id" in problems[0]


def test_check_passes_on_a_ready_property(emu: Emulator, source_for: Any) -> None:
    assert source_for(emu).check() == []
    assert emu.requests("GET", "/v1beta/properties/123456/metadata")


def test_wrong_token_is_a_config_error_without_the_token(emu: Emulator, source_for: Any) -> None:
    settings = emu.adapter_settings(valid_token=False)
    source = source_for(emu, access_token="ya29.secret-do-not-print")

    with pytest.raises(ConfigError) as info:
        list(source.touchpoints(SINCE))

    message = str(info.value)
    assert "123456" in message and "access_token" in message
    assert "secret-do-not-print" not in message and settings["access_token"] not in message
    assert len(emu.requests("POST")) == 1
    assert source.check() and "secret-do-not-print" not in source.check()[0]


def test_unknown_property_is_a_config_error(emu: Emulator, source_for: Any) -> None:
    with pytest.raises(ConfigError, match="Viewer"):
        list(source_for(emu, property_id="999999").touchpoints(SINCE))


@pytest.mark.parametrize("fault", ["429", "503", "500", "drop"])
def test_transient_faults_are_retried(emu: Emulator, source_for: Any, fault: str) -> None:
    seed_days(emu, 5, datetime(2026, 11, 5, tzinfo=UTC))
    expected = list(source_for(emu).touchpoints(SINCE))
    emu.clear_log()
    emu.inject(fault, count=2, path_prefix="/v1beta/properties/123456:runReport")
    source = source_for(emu)

    assert list(source.touchpoints(SINCE)) == expected
    assert source.api_calls() == 3
    assert len(emu.requests("POST")) == 3


def test_quota_exhaustion_stops_the_run_without_retrying(source_for: Any) -> None:
    with Emulator(tokens_per_day=2) as server:
        server.tokens_per_hour = server.tokens_per_project_per_hour = 100
        source = source_for(server)
        assert list(source.touchpoints(SINCE)) == []
        assert list(source.touchpoints(SINCE)) == []
        sent = len(server.log)
        with pytest.raises(BudgetExhausted, match="tokens per day quota used up"):
            list(source.touchpoints(SINCE))
        assert len(server.log) == sent  # known to be spent: nothing more is sent


def test_quota_429_is_a_budget_stop_not_a_retry(source_for: Any) -> None:
    with Emulator(tokens_per_day=1) as server:
        server.tokens_per_hour = server.tokens_per_project_per_hour = 100
        server.tokens_used_today = 1  # spent by another integration before this run
        source = source_for(server)
        with pytest.raises(BudgetExhausted, match="tokens per day"):
            list(source.touchpoints(SINCE))
        assert len(server.log) == 1


def test_spent_hourly_tokens_stop_before_the_next_request(source_for: Any) -> None:
    with Emulator() as server:
        server.tokens_per_hour = 1
        source = source_for(server)
        assert list(source.touchpoints(SINCE)) == []
        sent = len(server.log)
        # the emulator said 0 tokens remain this hour: stop cleanly rather than sleep an hour
        with pytest.raises(BudgetExhausted, match="tokens per hour quota used up"):
            list(source.touchpoints(SINCE))
        assert len(server.log) == sent


def test_retry_after_header_is_read(emu: Emulator, source_for: Any) -> None:
    emu.rate_limited_response = lambda req: Response(  # type: ignore[method-assign]
        429,
        {"error": {"code": 429, "message": "Exhausted", "status": "RESOURCE_EXHAUSTED"}},
        {"Retry-After": "7"},
    )
    emu.inject("429")
    source = source_for(emu)
    with pytest.raises(TooManyRequests) as info:
        source._client.get_metadata(name="properties/123456/metadata")
    error = classify(info.value, source.settings)
    assert isinstance(error, TransientError) and error.retry_after == 7.0


def test_spend_is_empty(emu: Emulator, source_for: Any) -> None:
    assert list(source_for(emu).spend(SINCE)) == []
    assert emu.requests() == []


def test_settings_need_exactly_one_credential(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Ga4Source.Settings(property_id="1")
    with pytest.raises(ValidationError, match="exactly one"):
        Ga4Source.Settings(property_id="1", access_token="t", credentials_file=tmp_path / "k.json")
    with pytest.raises(ValidationError, match="numeric"):
        Ga4Source.Settings(property_id="UA-123", access_token="t")
    with pytest.raises(ValidationError):
        Ga4Source.Settings(property_id="1", access_token="t", page_size=250_001)
    with pytest.raises(ValidationError):
        Ga4Source.Settings(property_id="1", access_token="t", unknown=1)  # type: ignore[call-arg]
    settings = Ga4Source.Settings(property_id="properties/42", access_token="tok-123")
    assert settings.property_id == "42"
    assert "tok-123" not in repr(settings) and "tok-123" not in settings.model_dump_json()


def test_unreadable_key_file_is_a_config_error(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account"}))
    for path in (key, tmp_path / "missing.json"):
        settings = Ga4Source.Settings(property_id="1", credentials_file=path)
        with pytest.raises(ConfigError, match="credentials_file"):
            Ga4Source(settings)


def test_a_dropped_adapter_closes_its_connections(emu: Emulator) -> None:
    source = Ga4Source(Ga4Source.Settings(**emu.adapter_settings()))
    assert list(source.touchpoints(SINCE)) == []
    finalizer = source._finalizer
    del source
    gc.collect()
    assert not finalizer.alive
