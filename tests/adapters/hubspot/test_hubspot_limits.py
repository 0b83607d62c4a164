"""HubSpot's limits as settings, sized from the portal's headers, and a 429 waited out."""

from __future__ import annotations

import pytest

from adapters.hubspot.adapter import HubSpotCrm, HubSpotSettings
from adapters.hubspot.emulator import Emulator
from connector.kernel.errors import BudgetExhausted


def settings(emu: Emulator, **overrides: object) -> HubSpotSettings:
    return HubSpotSettings(**{**emu.adapter_settings(), "rate_limit_share": 1.0, **overrides})


@pytest.mark.parametrize(
    ("tier", "limits"),
    [
        ("free", (100, 250_000)),
        ("starter", (100, 250_000)),
        ("professional", (190, 625_000)),
        ("enterprise", (190, 1_000_000)),
    ],
)
def test_each_tier_has_its_documented_limits(tier: str, limits: tuple[int, int]) -> None:
    assert HubSpotSettings(access_token="pat", tier=tier).limits() == limits


def test_explicit_limits_override_the_tiers() -> None:
    chosen = HubSpotSettings(
        access_token="pat", tier="enterprise", ten_second_limit=250, daily_limit=2_000_000
    )
    assert chosen.limits() == (250, 2_000_000)
    with pytest.raises(ValueError, match="tier"):
        HubSpotSettings(access_token="pat", tier="gold")


def test_the_limiter_takes_the_portals_own_limit_from_its_headers() -> None:
    with Emulator(rate_limit=(7, 2.0)) as emu, HubSpotCrm(settings(emu, tier="enterprise")) as crm:
        assert crm._limits.limiter.allowed == 190
        crm.describe_fields("contacts")
        assert crm._limits.limiter.allowed == 7
        assert crm._limits.limiter.window == pytest.approx(2.0, rel=0.05)


def test_a_429_waits_out_the_interval_the_portal_names() -> None:
    with Emulator(rate_limit=(5, 0.5)) as emu, HubSpotCrm(settings(emu)) as crm:
        emu.inject("429")
        crm.describe_fields("contacts")
        refused, answered = emu.requests()
    assert (refused.status, answered.status) == (429, 200)
    assert answered.at - refused.at >= 0.5  # the interval header, not the test's fast retries


def test_a_run_stops_at_its_share_of_the_daily_limit() -> None:
    with Emulator() as emu:
        chosen = settings(emu, daily_limit=4, api_budget_share=0.5)
        with HubSpotCrm(chosen) as crm:
            emu.daily_limit = 4  # the portal agrees (its header would resize the budget)
            crm.describe_fields("contacts")
            crm.describe_fields("contacts")
            with pytest.raises(BudgetExhausted, match="2 requests"):
                crm.describe_fields("contacts")
    assert len(emu.requests()) == 2
