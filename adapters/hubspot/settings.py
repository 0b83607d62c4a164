"""How to reach one HubSpot portal with a private app token, and how much of its API to use."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connector.kernel.timeutil import TimeZoneName

Tier = Literal["free", "starter", "professional", "enterprise"]
# Requests per 10 s and per day a private app may send, by the portal's subscription
# (https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines; the API limit
# increase pack raises the burst to 250 and the day by 1,000,000: set both explicitly then).
TIER_LIMITS: dict[str, tuple[int, int]] = {
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 625_000),
    "enterprise": (190, 1_000_000),
}


class HubSpotSettings(BaseModel):
    """How to reach one HubSpot portal with a private app token."""

    model_config = ConfigDict(extra="forbid")

    access_token: SecretStr
    host: str = "https://api.hubapi.com"
    page_size: int = Field(default=100, ge=1, le=100)
    tier: Tier = Field(
        default="starter",
        description="The portal's subscription: sets the default ten-second and daily limits.",
    )
    ten_second_limit: int | None = Field(
        default=None, ge=1, description="Requests per 10 s; default: the tier's. The portal's "
        "X-HubSpot-RateLimit-Max header resizes it once a response arrives.",
    )  # fmt: skip
    daily_limit: int | None = Field(
        default=None, ge=1, description="Requests per day; default: the tier's. The portal's "
        "X-HubSpot-RateLimit-Daily header resizes it.",
    )  # fmt: skip
    rate_limit_share: float = Field(default=0.5, gt=0, le=1)
    api_budget_share: float = Field(
        default=0.25, gt=0, le=1, description="Share of the daily limit one run may use."
    )
    property_group: str = "closedloop"
    search_per_second: int = Field(default=4, ge=1)  # HubSpot allows 5 per token
    timeout_seconds: float = Field(default=60.0, gt=0)
    time_zone: TimeZoneName | None = Field(
        default=None,
        description="IANA time zone of the portal's dates; default: the portal's (account-info).",
    )

    def limits(self) -> tuple[int, int]:
        """(requests per 10 s, requests per day): the explicit settings, else the tier's."""
        ten, daily = TIER_LIMITS[self.tier]
        return self.ten_second_limit or ten, self.daily_limit or daily
