"""Meta Ads source through the real facebook-business SDK against the emulator."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import time_machine
from facebook_business.api import FacebookAdsApi

from adapters.meta_ads.adapter import MetaAdsSource
from adapters.meta_ads.emulator import Emulator
from connector.kernel.errors import ConfigError, TransientError

SINCE = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(datetime(2026, 11, 20, 12, tzinfo=UTC), tick=True):
        yield


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.add_campaign("2385001", "Prospecting")
        emulator.add_campaign("2385002", "Retargeting")
        yield emulator


def source(emu: Emulator, **overrides: object) -> MetaAdsSource:
    return MetaAdsSource(MetaAdsSource.Settings(**{**emu.adapter_settings(), **overrides}))


def test_spend_per_campaign_day_across_pages(emu: Emulator) -> None:
    emu.currency = "GBP"
    for day in range(1, 11):
        emu.add_daily(
            "2385001", date(2026, 11, day), spend=10 + day, clicks=day, impressions=100 * day
        )
        emu.add_daily("2385002", date(2026, 11, day), spend=0.5, clicks=1, impressions=10)
    adapter = source(emu, page_size=3)

    rows = list(adapter.spend(SINCE))

    assert len(rows) == 20
    assert len({(s.campaign_id, s.day) for s in rows}) == 20
    first = next(s for s in rows if s.campaign_id == "2385001" and s.day == date(2026, 11, 4))
    assert (first.campaign, first.cost, first.clicks, first.impressions) == (
        "Prospecting",
        14.0,
        4,
        400,
    )
    assert {(s.platform, s.account, s.currency, s.channel) for s in rows} == {
        ("meta_ads", "act_1234567890", "GBP", "Paid Social")
    }
    pages = emu.requests("GET", "/v21.0/act_1234567890/insights")
    assert adapter.api_calls() == len(pages) == 7
    assert pages[0].arg("level") == "campaign" and pages[0].arg("time_increment") == "1"
    assert json.loads(pages[0].arg("time_range") or "") == {
        "since": "2026-11-01",
        "until": "2026-11-20",
    }
    assert pages[0].arg("after") is None and pages[1].arg("after")


def test_restated_day_keeps_the_key_with_new_numbers(emu: Emulator) -> None:
    emu.add_daily("2385001", date(2026, 11, 5), spend=10, clicks=1, impressions=10)
    adapter = source(emu)
    [before] = adapter.spend(SINCE)
    emu.add_daily("2385001", date(2026, 11, 5), spend=12.5, clicks=2, impressions=20)
    [after] = adapter.spend(SINCE)
    assert (before.platform, before.account, before.campaign_id, before.day) == (
        after.platform,
        after.account,
        after.campaign_id,
        after.day,
    )
    assert (after.cost, after.clicks) == (12.5, 2)


def test_no_touchpoints(emu: Emulator) -> None:
    assert list(source(emu).touchpoints(SINCE)) == []
    assert emu.requests() == []


def test_crash_reporter_and_default_api_are_left_alone(emu: Emulator) -> None:
    hook = sys.excepthook
    default = FacebookAdsApi.get_default_api()
    emu.add_daily("2385001", date(2026, 11, 5), spend=1, clicks=1, impressions=1)
    assert len(list(source(emu).spend(SINCE))) == 1
    assert sys.excepthook is hook
    assert FacebookAdsApi.get_default_api() is default


def test_invalid_token_is_a_config_error_without_the_token(emu: Emulator) -> None:
    adapter = MetaAdsSource(MetaAdsSource.Settings(**emu.adapter_settings(valid_token=False)))
    with pytest.raises(ConfigError) as info:
        list(adapter.spend(SINCE))
    assert "190" in str(info.value) and "access_token" in str(info.value)
    assert "EAAB-invalid-token" not in str(info.value)
    assert adapter.api_calls() == 1


def test_unknown_account_is_a_config_error(emu: Emulator) -> None:
    with pytest.raises(ConfigError, match="act_999"):
        list(source(emu, ad_account_id="999").spend(SINCE))


@pytest.mark.parametrize("fault", ["429", "500", "503", "drop"])
def test_transient_faults_are_retried(emu: Emulator, fault: str) -> None:
    emu.regain_minutes = 0
    emu.add_daily("2385001", date(2026, 11, 5), spend=3, clicks=1, impressions=1)
    emu.inject(fault, count=2)
    adapter = source(emu)
    assert [s.cost for s in adapter.spend(SINCE)] == [3.0]
    assert adapter.api_calls() == 3


def test_fault_on_a_later_page_resumes_that_page(emu: Emulator) -> None:
    for day in range(1, 7):
        emu.add_daily("2385001", date(2026, 11, day), spend=day, clicks=1, impressions=1)
    adapter = source(emu, page_size=2)
    rows = adapter.spend(SINCE)
    got = [next(rows).cost, next(rows).cost]
    emu.regain_minutes = 0
    emu.inject("429", count=1)
    got += [s.cost for s in rows]
    assert got == [1, 2, 3, 4, 5, 6]


def test_throttle_carries_the_regain_time(emu: Emulator) -> None:
    emu.regain_minutes = 3
    emu.inject("429", count=10)
    with pytest.raises(TransientError) as info:
        list(source(emu).spend(SINCE))
    assert info.value.retry_after == 180
    assert "80000" in str(info.value)


def test_settings_normalise_the_account_id() -> None:
    settings = MetaAdsSource.Settings(ad_account_id="123", access_token="t")
    assert settings.ad_account_id == "act_123"
    with pytest.raises(ValueError):
        MetaAdsSource.Settings(ad_account_id="acme", access_token="t")


def test_sample_and_settings_feed_the_adapter() -> None:
    with Emulator() as emu:
        emu.seed_sample()
        adapter = MetaAdsSource(MetaAdsSource.Settings(**emu.adapter_settings()))
        rows = list(adapter.spend(datetime(2026, 10, 21, tzinfo=UTC)))
    assert len(rows) == 30
    assert all(s.cost > 0 and s.currency == "USD" for s in rows)
