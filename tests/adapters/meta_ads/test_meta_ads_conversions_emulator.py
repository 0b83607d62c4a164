"""The Meta emulator's Conversions API, through the real facebook-business client."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import time_machine
from facebook_business.adobjects.adspixel import AdsPixel
from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.event_request import EventRequest
from facebook_business.adobjects.serverside.user_data import UserData
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from adapters.meta_ads.emulator import MAX_EVENTS, Emulator

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
PIXEL = "1234567890123456"
VERSION = "v21.0"
EMAIL_HASH = hashlib.sha256(b"ada@example.com").hexdigest()
FBC = "fb.1.1763600000000.IwAR2xfbclid"


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.add_pixel(PIXEL, "CRM events")
        yield emulator


@pytest.fixture(autouse=True)
def api(emu: Emulator) -> Iterator[FacebookAdsApi]:
    """The process-wide default api that EventRequest uses, pointed at the emulator."""
    previous = FacebookAdsApi.get_default_api()
    api = FacebookAdsApi.init(access_token=emu.access_token, api_version=VERSION, crash_log=False)
    api._session.GRAPH = emu.url
    yield api
    api._session.requests.close()
    FacebookAdsApi.set_default_api(previous)


def lead(
    event_id: str | None = "lead-1", name: str = "Lead", ago: timedelta = timedelta(hours=1)
) -> Event:
    return Event(
        event_name=name,
        event_time=int((NOW - ago).timestamp()),
        event_id=event_id,
        action_source=ActionSource.SYSTEM_GENERATED,
        user_data=UserData(emails=["Ada@Example.com "], lead_id=1234567890123456),
    )


def send(events: list[Event], **kw: Any) -> Any:
    return EventRequest(pixel_id=PIXEL, events=events, **kw).execute()


def raw_event(**overrides: Any) -> dict[str, Any]:
    """An event as JSON, to send values the SDK would normalise away."""
    event: dict[str, Any] = {
        "event_name": "Lead",
        "event_time": int((NOW - timedelta(hours=1)).timestamp()),
        "action_source": "system_generated",
        "user_data": {"em": [EMAIL_HASH]},
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def send_raw(events: list[dict[str, Any]], pixel: str = PIXEL, **params: Any) -> Any:
    # facebook-business types ``data`` as list<string>: each event goes as a JSON string.
    data = [json.dumps(e) for e in events]
    return AdsPixel(pixel).create_event(params={"data": data, **params})


def test_events_are_received_and_recorded_as_sent(emu: Emulator) -> None:
    purchase = Event(
        event_name="Purchase",
        event_time=int((NOW - timedelta(days=6)).timestamp()),
        event_id="opp-9-won",
        action_source=ActionSource.SYSTEM_GENERATED,
        user_data=UserData(phones=["+1 650 555 1212"], fbc=FBC),
        custom_data=CustomData(value=4200.5, currency="usd"),
    )

    response = send([lead(), purchase], partner_agent="closedloop")

    assert response.events_received == 2
    assert response.fbtrace_id.startswith("A") and response.messages == []
    first, second = emu.events_for(PIXEL)
    assert (first.event_name, first.event_id, first.action_source) == (
        "Lead",
        "lead-1",
        "system_generated",
    )
    assert first.user_data["em"] == [EMAIL_HASH]  # the SDK normalised and hashed it
    assert first.user_data["lead_id"] == 1234567890123456
    assert (second.value, second.custom_data["currency"], second.user_data["fbc"]) == (
        4200.5,
        "usd",
        FBC,
    )
    assert second.partner_agent == "closedloop" and second.test_event_code is None
    [request] = emu.requests("POST", f"/{PIXEL}/events")
    assert request.path == f"/{VERSION}/{PIXEL}/events"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.arg("access_token") == emu.access_token
    assert emu.pixels[PIXEL].stats.received == 2


def test_a_json_body_with_event_objects_is_read_too(emu: Emulator) -> None:
    response = requests.post(
        f"{emu.url}/{VERSION}/{PIXEL}/events",
        json={"data": [raw_event(event_id="json-1")], "access_token": emu.access_token},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["events_received"] == 1
    assert [e.event_id for e in emu.events_for(PIXEL)] == ["json-1"]


def test_the_same_event_name_and_id_counts_once(emu: Emulator) -> None:
    send([lead("lead-1"), lead("lead-1")])  # a repeat inside one request
    send([lead("lead-1")])  # and in a later one
    send([lead("lead-1", name="Qualified")])  # same id, another event: counted
    send([lead(None), lead(None)])  # without event_id nothing is deduplicated

    assert [(e.event_name, e.event_id) for e in emu.events_for(PIXEL)] == [
        ("Lead", "lead-1"),
        ("Qualified", "lead-1"),
        ("Lead", None),
        ("Lead", None),
    ]
    stats = emu.pixels[PIXEL].stats
    assert (stats.received, stats.deduplicated) == (6, 2)


def test_deduplication_holds_for_48_hours(emu: Emulator) -> None:
    send([lead("lead-1")])
    with time_machine.travel(NOW + timedelta(hours=47), tick=False):
        send([lead("lead-1")])
    with time_machine.travel(NOW + timedelta(hours=49), tick=False):
        send([lead("lead-1")])
    assert len(emu.events_for(PIXEL)) == 2
    assert emu.pixels[PIXEL].stats.deduplicated == 1


def test_test_events_are_kept_apart_from_live_ones(emu: Emulator) -> None:
    response = send([lead()], test_event_code="TEST4711")

    assert response.events_received == 1
    [test_event] = emu.test_events
    assert test_event.test_event_code == "TEST4711"
    assert emu.events_for(PIXEL) == []
    assert emu.pixels[PIXEL].stats.received == 0
    send([lead()])  # a test event is no duplicate of the live one
    assert len(emu.events_for(PIXEL)) == 1


@pytest.mark.parametrize(
    ("overrides", "subcode", "title"),
    [
        (
            {"event_time": int((NOW - timedelta(days=8)).timestamp())},
            2804003,
            "Event Timestamp Too Old",
        ),
        (
            {"event_time": int((NOW + timedelta(hours=1)).timestamp())},
            2804019,
            "Event Timestamp In Future",
        ),
        ({"event_time": "yesterday"}, 2804019, "Invalid event_time"),
        ({"event_name": ""}, 2804019, "Missing event_name"),
        ({"action_source": "crm"}, 2804019, "Invalid action_source"),
        ({"action_source": None}, 2804019, "Invalid action_source"),
        (
            {"user_data": {"country": [hashlib.sha256(b"us").hexdigest()]}},
            2804050,
            "Not Enough Customer Information",
        ),
        (
            {"user_data": {"em": ["ada@example.com"]}},
            2804019,
            "Invalid Hashed Customer Information",
        ),
        ({"user_data": {"fbc": "IwAR2xfbclid"}}, 2804019, "Invalid fbc"),
        ({"user_data": {"lead_id": "12345"}}, 2804036, "Invalid Lead ID"),
        ({"custom_data": {"value": "lots", "currency": "USD"}}, 2804019, "Invalid value"),
        ({"custom_data": {"value": 10}}, 2804019, "Missing currency"),
        (
            {"event_name": "Purchase", "custom_data": {"currency": "USD"}},
            2804019,
            "Missing Purchase Value",
        ),
        ({"action_source": "website"}, 2804019, "Missing event_source_url"),
    ],
)
def test_one_invalid_event_rejects_the_whole_request(
    emu: Emulator, overrides: dict[str, Any], subcode: int, title: str
) -> None:
    with pytest.raises(FacebookRequestError) as info:
        send_raw([raw_event(event_id="good"), raw_event(**overrides)])

    error = info.value
    assert (error.http_status(), error.api_error_code(), error.api_error_subcode()) == (
        400,
        100,
        subcode,
    )
    assert error.api_error_type() == "OAuthException"
    body = error.body()["error"]
    assert body["error_user_title"] == title and body["error_user_msg"]
    assert body["fbtrace_id"]
    assert emu.events_for(PIXEL) == [] and emu.pixels[PIXEL].stats.received == 0


def test_store_events_may_be_62_days_old(emu: Emulator) -> None:
    old = int((NOW - timedelta(days=30)).timestamp())
    assert (
        send_raw([raw_event(action_source="physical_store", event_time=old)])["events_received"]
        == 1
    )
    with pytest.raises(FacebookRequestError):
        send_raw([raw_event(action_source="system_generated", event_time=old)])


def test_at_most_1000_events_per_request(emu: Emulator) -> None:
    events = [raw_event(event_id=f"e-{i}") for i in range(MAX_EVENTS + 1)]

    with pytest.raises(FacebookRequestError) as info:
        send_raw(events)
    assert info.value.api_error_code() == 100
    assert emu.pixels[PIXEL].stats.received == 0

    assert send_raw(events[:MAX_EVENTS])["events_received"] == 1000
    assert len(emu.events_for(PIXEL)) == 1000


def test_an_unknown_pixel_is_an_unsupported_post_request(emu: Emulator) -> None:
    with pytest.raises(FacebookRequestError) as info:
        send_raw([raw_event()], pixel="999")
    error = info.value
    assert (error.api_error_code(), error.api_error_subcode()) == (100, 33)
    assert error.api_error_type() == "GraphMethodException"
    assert error.api_error_message().startswith(
        "Unsupported post request. Object with ID '999' does not exist"
    )


def test_an_invalid_token_is_oauth_error_190(emu: Emulator) -> None:
    session = FacebookSession(access_token="EAAB-revoked")
    session.GRAPH = emu.url
    wrong = FacebookAdsApi(session, api_version=VERSION)
    try:
        with pytest.raises(FacebookRequestError) as info:
            AdsPixel(PIXEL, api=wrong).create_event(params={"data": [json.dumps(raw_event())]})
    finally:
        session.requests.close()
    assert (info.value.http_status(), info.value.api_error_code()) == (400, 190)
    assert emu.events_for(PIXEL) == []


def test_throttling_is_the_app_rate_limit(emu: Emulator) -> None:
    emu.rate_limit = (1, 60.0)
    send([lead("first")])

    with pytest.raises(FacebookRequestError) as info:
        send([lead("second")])

    error = info.value
    assert (error.api_error_code(), error.api_transient_error()) == (4, True)
    assert json.loads(error.http_headers()["X-App-Usage"])["call_count"] == 100
    assert [e.event_id for e in emu.events_for(PIXEL)] == ["first"]


def test_a_pixel_reads_back_by_id_and_an_unknown_one_is_graph_method_100_33(
    emu: Emulator, api: FacebookAdsApi
) -> None:
    pixel = AdsPixel(PIXEL, api=api).api_get(fields=["id", "name"])
    assert (pixel["id"], pixel["name"]) == (PIXEL, "CRM events")
    with pytest.raises(FacebookRequestError) as info:
        AdsPixel("999", api=api).api_get(fields=["name"])
    assert (info.value.api_error_code(), info.value.api_error_subcode()) == (100, 33)
    assert info.value.api_error_type() == "GraphMethodException"
    with pytest.raises(FacebookRequestError) as info:
        AdsPixel(PIXEL, api=api).api_get(fields=["owner_business"])
    assert "nonexisting field" in info.value.api_error_message()
