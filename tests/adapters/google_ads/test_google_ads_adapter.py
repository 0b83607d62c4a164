"""Google Ads source against the emulator, through the REST wire format."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
import time_machine

from adapters.google_ads.adapter import SPEND_QUERY, GoogleAdsSource
from adapters.google_ads.emulator import BATCH_SIZE, Emulator
from connector.kernel.errors import ConfigError, TransientError
from connector.kernel.records import IdentityKind

TODAY = date(2026, 11, 20)
SINCE = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(datetime(2026, 11, 20, 12, tzinfo=UTC), tick=True):
        yield


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.add_campaign(9, "Spring Sale")
        emulator.add_campaign(10, "Brand")
        yield emulator


def source(emu: Emulator, **overrides: object) -> GoogleAdsSource:
    settings = {**emu.adapter_settings(), **overrides}
    return GoogleAdsSource(GoogleAdsSource.Settings(**settings))


def test_spend_per_campaign_day_with_currency_and_micros(emu: Emulator) -> None:
    emu.currency = "EUR"
    emu.add_daily(9, date(2026, 11, 2), cost=12.34, clicks=10, impressions=1000)
    emu.add_daily(10, date(2026, 11, 2), cost=1.5, clicks=3, impressions=90)
    emu.add_daily(9, date(2026, 10, 20), cost=99, clicks=1, impressions=1)  # before since

    rows = sorted(source(emu).spend(SINCE), key=lambda s: s.campaign_id)

    assert [(s.campaign_id, s.campaign, s.day, s.cost, s.clicks, s.impressions) for s in rows] == [
        ("10", "Brand", date(2026, 11, 2), 1.5, 3, 90),
        ("9", "Spring Sale", date(2026, 11, 2), 12.34, 10, 1000),
    ]
    assert {(s.platform, s.account, s.currency, s.channel) for s in rows} == {
        ("google_ads", "1234567890", "EUR", "Paid Search")
    }
    [request] = emu.requests("POST", "googleAds:searchStream")
    assert request.path == "/v26/customers/1234567890/googleAds:searchStream"
    assert request.json() == {"query": SPEND_QUERY.format(start="2026-11-01", end="2026-11-20")}
    assert request.headers["developer-token"] == "emulator-dev-token"
    assert request.headers["authorization"] == "Bearer ya29.emulator-token"


def test_spend_reads_every_batch_of_the_stream(emu: Emulator) -> None:
    for n in range(BATCH_SIZE + 5):
        emu.add_campaign(1000 + n, f"c{n}")
        emu.add_daily(1000 + n, date(2026, 11, 3), cost=1, clicks=1, impressions=1)
    adapter = source(emu)

    rows = list(adapter.spend(SINCE))

    assert len(rows) == BATCH_SIZE + 5
    assert len({(s.campaign_id, s.day) for s in rows}) == len(rows)
    assert adapter.api_calls() == 1


def test_restated_day_keeps_the_key_with_new_numbers(emu: Emulator) -> None:
    emu.add_daily(9, date(2026, 11, 5), cost=10, clicks=5, impressions=50)
    adapter = source(emu)
    [first] = adapter.spend(SINCE)
    emu.add_daily(9, date(2026, 11, 5), cost=11.25, clicks=6, impressions=55)
    [second] = adapter.spend(SINCE)

    key = lambda s: (s.platform, s.account, s.campaign_id, s.day)  # noqa: E731
    assert key(first) == key(second)
    assert (second.cost, second.clicks) == (11.25, 6)


def test_clicks_become_gclid_touchpoints_one_query_per_day(emu: Emulator) -> None:
    emu.add_click("gclid-A", 9, date(2026, 11, 18), ad_group="Core", keyword="crm")
    emu.add_click("gclid-B", 10, date(2026, 11, 20))
    adapter = source(emu)

    touches = list(adapter.touchpoints(datetime(2026, 11, 17, 15, tzinfo=UTC)))

    queries = [r.json()["query"] for r in emu.requests("POST", "searchStream")]
    assert [q.rsplit("'", 2)[1] for q in queries] == [
        "2026-11-17",
        "2026-11-18",
        "2026-11-19",
        "2026-11-20",
    ]
    assert all("FROM click_view WHERE segments.date = '" in q for q in queries)
    assert adapter.api_calls() == 4
    a, b = touches
    assert (a.key, a.identity_kind, a.identity_value) == ("gclid-A", IdentityKind.GCLID, "gclid-A")
    assert a.occurred_at == datetime(2026, 11, 18, tzinfo=UTC)
    assert (a.source, a.utm_source, a.utm_medium, a.utm_campaign, a.campaign_id) == (
        "google_ads",
        "google",
        "cpc",
        "Spring Sale",
        "9",
    )
    assert b.occurred_at.tzinfo is UTC and b.utm_campaign == "Brand"


def test_click_view_reads_at_most_the_last_90_days(emu: Emulator) -> None:
    adapter = source(emu)
    list(adapter.touchpoints(datetime(2026, 1, 1, tzinfo=UTC)))
    first = emu.requests("POST", "searchStream")[0].json()["query"]
    assert (TODAY - timedelta(days=89)).isoformat() in first
    assert adapter.api_calls() == 90


def test_emulator_rejects_click_view_without_single_day(emu: Emulator) -> None:
    query = (
        "SELECT click_view.gclid FROM click_view "
        "WHERE segments.date BETWEEN '2026-11-01' AND '2026-11-02'"
    )
    response = requests.post(
        f"{emu.url}/v26/customers/1234567890/googleAds:searchStream",
        json={"query": query},
        headers={
            "Authorization": "Bearer ya29.emulator-token",
            "developer-token": "emulator-dev-token",
        },
        timeout=5,
    )
    assert response.status_code == 400
    [error] = response.json()[0]["error"]["details"][0]["errors"]
    assert error["errorCode"] == {"clickViewError": "EXPECTED_FILTER_ON_A_SINGLE_DAY"}


def test_wrong_access_token_is_a_config_error_without_the_token(emu: Emulator) -> None:
    adapter = GoogleAdsSource(GoogleAdsSource.Settings(**emu.adapter_settings(valid_token=False)))
    with pytest.raises(ConfigError) as info:
        list(adapter.spend(SINCE))
    assert "OAUTH_TOKEN_INVALID" in str(info.value)
    assert "ya29.invalid-token" not in str(info.value)
    assert adapter.api_calls() == 1  # not retried


def test_unapproved_developer_token_is_a_config_error(emu: Emulator) -> None:
    with pytest.raises(ConfigError) as info:
        list(source(emu, developer_token="test-only-token").spend(SINCE))
    assert "DEVELOPER_TOKEN_NOT_APPROVED" in str(info.value)
    assert "test-only-token" not in str(info.value)


def test_refresh_token_flow_gets_an_access_token(emu: Emulator) -> None:
    settings = {
        "customer_id": "123-456-7890",
        "developer_token": emu.developer_token,
        "refresh_token": emu.refresh_token,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "token_uri": f"{emu.url}/token",
        "endpoint": emu.url,
    }
    emu.add_daily(9, date(2026, 11, 5), cost=1, clicks=1, impressions=1)
    adapter = GoogleAdsSource(GoogleAdsSource.Settings(**settings))
    assert len(list(adapter.spend(SINCE))) == 1
    assert emu.requests("POST", "/token")
    auth = emu.requests("POST", "searchStream")[0].headers["authorization"]
    assert auth.startswith("Bearer ya29.refreshed-")


def test_revoked_refresh_token_is_a_config_error(emu: Emulator) -> None:
    settings = GoogleAdsSource.Settings(
        customer_id="1234567890",
        developer_token="emulator-dev-token",
        refresh_token="1//old",
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        token_uri=f"{emu.url}/token",
        endpoint=emu.url,
    )
    with pytest.raises(ConfigError, match="invalid_grant"):
        list(GoogleAdsSource(settings).spend(SINCE))


@pytest.mark.parametrize("fault", ["429", "503", "drop"])
def test_transient_faults_are_retried(emu: Emulator, fault: str) -> None:
    emu.add_daily(9, date(2026, 11, 5), cost=2, clicks=1, impressions=1)
    emu.quota_retry_seconds = 1
    emu.inject(fault, count=2)
    adapter = source(emu)
    assert [s.cost for s in adapter.spend(SINCE)] == [2]
    assert adapter.api_calls() == 3


def test_quota_error_carries_the_retry_delay(emu: Emulator) -> None:
    emu.quota_retry_seconds = 7
    emu.inject("429", count=10)
    with pytest.raises(TransientError) as info:
        list(source(emu).spend(SINCE))
    assert info.value.retry_after == 7
    assert "RESOURCE_EXHAUSTED" in str(info.value)


def test_sample_and_settings_feed_the_adapter() -> None:
    with Emulator() as emu:
        emu.seed_sample()
        adapter = GoogleAdsSource(GoogleAdsSource.Settings(**emu.adapter_settings()))
        since = datetime(2026, 10, 21, tzinfo=UTC)
        spend = list(adapter.spend(since))
        touches = list(adapter.touchpoints(since))
    assert len(spend) == 30 and len(touches) == 30
    assert len({t.key for t in touches}) == 30


def test_settings_validate_customer_ids_and_credentials() -> None:
    with pytest.raises(ValueError, match="10-digit"):
        GoogleAdsSource.Settings(customer_id="12", developer_token="d", access_token="a")
    with pytest.raises(ValueError, match="refresh_token"):
        GoogleAdsSource.Settings(customer_id="1234567890", developer_token="d")
    with pytest.raises(ValueError, match="extra"):
        GoogleAdsSource.Settings(
            customer_id="1234567890", developer_token="d", access_token="a", x=1
        )
    ok = GoogleAdsSource.Settings(
        customer_id="123-456-7890",
        login_customer_id="999-000-1111",
        developer_token="d",
        access_token="a",
    )
    assert (ok.customer_id, ok.login_customer_id) == ("1234567890", "9990001111")
    assert "a" not in repr(ok.access_token)
