"""LinkedIn Ads source against the emulator, Rest.li 2.0 encoding on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import requests
import time_machine

from adapters.linkedin_ads.adapter import LinkedInAdsSource, analytics_query
from adapters.linkedin_ads.emulator import Emulator, RestLiError, parse_restli
from connector.kernel.errors import ConfigError, TransientError

SINCE = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(datetime(2026, 11, 20, 12, tzinfo=UTC), tick=True):
        yield


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.add_campaign(612001, "ABM - Enterprise")
        emulator.add_campaign(612002, "Lead Gen")
        yield emulator


def source(emu: Emulator, **overrides: object) -> LinkedInAdsSource:
    return LinkedInAdsSource(LinkedInAdsSource.Settings(**{**emu.adapter_settings(), **overrides}))


def test_spend_per_campaign_day_named_and_in_account_currency(emu: Emulator) -> None:
    emu.currency = "EUR"
    emu.add_daily(612001, date(2026, 11, 3), cost=71.3, clicks=12, impressions=4350)
    emu.add_daily(612002, date(2026, 11, 3), cost=5, clicks=1, impressions=80)
    emu.add_daily(612002, date(2026, 10, 30), cost=99, clicks=1, impressions=1)  # before since

    rows = sorted(source(emu).spend(SINCE), key=lambda s: s.campaign_id)

    assert [(s.campaign_id, s.campaign, s.day, s.cost, s.clicks, s.impressions) for s in rows] == [
        ("612001", "ABM - Enterprise", date(2026, 11, 3), 71.3, 12, 4350),
        ("612002", "Lead Gen", date(2026, 11, 3), 5.0, 1, 80),
    ]
    assert {(s.platform, s.account, s.currency, s.channel) for s in rows} == {
        ("linkedin_ads", "508123456", "EUR", "Paid Social")
    }
    [analytics] = emu.requests("GET", "/rest/adAnalytics")
    assert analytics.headers["linkedin-version"] == "202411"
    assert analytics.headers["x-restli-protocol-version"] == "2.0.0"
    assert (
        analytics.arg("dateRange")
        == "(start:(year:2026,month:11,day:1),end:(year:2026,month:11,day:20))"
    )
    assert analytics.arg("accounts") == "List(urn:li:sponsoredAccount:508123456)"


def test_query_string_keeps_restli_structure_bare_and_urns_encoded() -> None:
    query = analytics_query("42", date(2026, 5, 1), date(2026, 5, 7))
    assert "dateRange=(start:(year:2026,month:5,day:1),end:(year:2026,month:5,day:7))" in query
    assert "accounts=List(urn%3Ali%3AsponsoredAccount%3A42)" in query


def test_emulator_rejects_a_urn_left_unencoded(emu: Emulator) -> None:
    url = (
        f"{emu.url}/rest/adAnalytics?q=analytics&pivot=CAMPAIGN&timeGranularity=DAILY"
        "&dateRange=(start:(year:2026,month:11,day:1))&accounts=List(urn:li:sponsoredAccount:508123456)"
    )
    headers = {
        "Authorization": "Bearer AQV-emulator-token",
        "LinkedIn-Version": "202411",
        "X-Restli-Protocol-Version": "2.0.0",
    }
    response = requests.get(url, headers=headers, timeout=5)
    assert response.status_code == 400
    assert response.json()["code"] == "ILLEGAL_ARGUMENT"


def test_restli_parser() -> None:
    assert parse_restli("(start:(year:2026,month:5,day:1))") == {
        "start": {"year": "2026", "month": "5", "day": "1"}
    }
    assert parse_restli("List(urn%3Ali%3Aa%3A1,urn%3Ali%3Aa%3A2)") == ["urn:li:a:1", "urn:li:a:2"]
    with pytest.raises(RestLiError):
        parse_restli("List(urn:li:a:1)")


def test_long_ranges_are_split_into_windows(emu: Emulator) -> None:
    emu.add_daily(612001, date(2026, 9, 1), cost=1, clicks=1, impressions=1)
    emu.add_daily(612001, date(2026, 11, 20), cost=2, clicks=1, impressions=1)
    adapter = source(emu, currency="USD", days_per_request=30)

    rows = list(adapter.spend(datetime(2026, 9, 1, tzinfo=UTC)))

    assert sorted(s.cost for s in rows) == [1, 2]
    windows = [r.arg("dateRange") for r in emu.requests("GET", "/rest/adAnalytics")]
    assert windows[0] == "(start:(year:2026,month:9,day:1),end:(year:2026,month:9,day:30))"
    assert windows[-1] == "(start:(year:2026,month:10,day:31),end:(year:2026,month:11,day:20))"
    assert len(windows) == 3
    assert emu.requests("GET", "/rest/adAccounts/508123456") == emu.requests("GET", "/adCampaigns")


def test_campaign_names_follow_the_page_token(emu: Emulator) -> None:
    for n in range(1500):
        emu.add_campaign(700000 + n, f"Campaign {n}")
    emu.add_daily(701499, date(2026, 11, 2), cost=3, clicks=1, impressions=1)
    [row] = source(emu).spend(SINCE)
    assert row.campaign == "Campaign 1499"
    pages = emu.requests("GET", "/adCampaigns")
    assert [p.arg("pageToken") is None for p in pages] == [True, False]


def test_restated_day_keeps_the_key_with_new_numbers(emu: Emulator) -> None:
    emu.add_daily(612001, date(2026, 11, 4), cost=10, clicks=2, impressions=20)
    adapter = source(emu)
    [before] = adapter.spend(SINCE)
    emu.add_daily(612001, date(2026, 11, 4), cost=14.5, clicks=3, impressions=30)
    [after] = adapter.spend(SINCE)
    assert (before.platform, before.account, before.campaign_id, before.day) == (
        after.platform,
        after.account,
        after.campaign_id,
        after.day,
    )
    assert (after.cost, after.clicks) == (14.5, 3)


def test_invalid_token_is_a_config_error_without_the_token(emu: Emulator) -> None:
    adapter = LinkedInAdsSource(
        LinkedInAdsSource.Settings(**emu.adapter_settings(valid_token=False))
    )
    with pytest.raises(ConfigError) as info:
        list(adapter.spend(SINCE))
    assert "INVALID_ACCESS_TOKEN" in str(info.value)
    assert "AQV-invalid-token" not in str(info.value)
    assert adapter.api_calls() == 1


def test_sunset_version_is_a_config_error(emu: Emulator) -> None:
    emu.active_versions = {"202611"}
    with pytest.raises(ConfigError, match="NONEXISTENT_VERSION"):
        list(source(emu).spend(SINCE))


@pytest.mark.parametrize("fault", ["429", "503", "drop"])
def test_transient_faults_are_retried(emu: Emulator, fault: str) -> None:
    emu.add_daily(612001, date(2026, 11, 4), cost=4, clicks=1, impressions=1)
    emu.inject(fault, count=2, path_prefix="/rest/adAnalytics")
    adapter = source(emu, currency="USD")
    assert [s.cost for s in adapter.spend(SINCE)] == [4]
    assert adapter.api_calls() == 4  # campaigns + 3 analytics attempts


def test_persistent_throttling_gives_up_as_transient(emu: Emulator) -> None:
    emu.inject("429", count=100)
    with pytest.raises(TransientError, match="TOO_MANY_REQUESTS"):
        list(source(emu).spend(SINCE))


def test_no_touchpoints(emu: Emulator) -> None:
    assert list(source(emu).touchpoints(SINCE)) == []


def test_settings_accept_an_account_urn() -> None:
    settings = LinkedInAdsSource.Settings(account_id="urn:li:sponsoredAccount:77", access_token="t")
    assert settings.account_id == "77"
    with pytest.raises(ValueError):
        LinkedInAdsSource.Settings(account_id="acme", access_token="t")


def test_sample_and_settings_feed_the_adapter() -> None:
    with Emulator() as emu:
        emu.seed_sample()
        adapter = LinkedInAdsSource(LinkedInAdsSource.Settings(**emu.adapter_settings()))
        rows = list(adapter.spend(datetime(2026, 10, 21, tzinfo=UTC)))
    assert len(rows) == 30
    assert all(s.campaign and s.currency == "USD" for s in rows)
