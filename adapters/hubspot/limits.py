"""The portal's API limits as one run uses them: a share of the ten-second limit (the tier's or
the settings', resized by the portal's own headers) and a share of the daily limit.

Limits: https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
"""

from __future__ import annotations

from typing import Any

from adapters.hubspot.errors import header
from adapters.hubspot.settings import HubSpotSettings
from connector.kernel.errors import BudgetExhausted
from connector.kernel.ratelimit import RateLimiter

SYSTEM = "hubspot"


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


class PortalLimits:
    def __init__(self, settings: HubSpotSettings) -> None:
        ten_seconds, self.daily = settings.limits()
        self.share = settings.api_budget_share
        self.limiter = RateLimiter(SYSTEM, ten_seconds, 10.0, settings.rate_limit_share)
        self._sized: tuple[int, int] | None = None  # (max, interval ms) the limiter was given

    def spend(self, sent: int, action: str) -> None:
        """Before a request: stop the run once it sent its share of the daily limit."""
        allowed = max(1, int(self.daily * self.share))
        if sent >= allowed:
            raise BudgetExhausted(
                f"HubSpot API budget used up while trying to {action}: this run sent {sent} "
                f"requests, its limit is {allowed} ({self.share:.0%} of the portal's "
                f"{self.daily} daily requests); the rest waits for the next run (or raise "
                "api_budget_share)"
            )

    def observe(self, headers: Any) -> None:
        """After a response: the portal's limit, interval and remaining requests."""
        most = _number(header(headers, "X-HubSpot-RateLimit-Max"))
        interval = _number(header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds"))
        if most and interval and (most, interval) != self._sized:
            self._sized = (most, interval)
            self.limiter.resize(most, interval / 1000)
        self.daily = _number(header(headers, "X-HubSpot-RateLimit-Daily")) or self.daily
        remaining = _number(header(headers, "X-HubSpot-RateLimit-Remaining"))
        if remaining is not None:
            # A rolling window: capacity comes back gradually, so look again in a second.
            self.limiter.observe(remaining, resets_in=1.0)
