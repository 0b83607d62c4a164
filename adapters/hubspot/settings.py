"""How to reach one HubSpot portal with a private app token."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connector.kernel.timeutil import TimeZoneName


class HubSpotSettings(BaseModel):
    """How to reach one HubSpot portal with a private app token."""

    model_config = ConfigDict(extra="forbid")

    access_token: SecretStr
    host: str = "https://api.hubapi.com"
    page_size: int = Field(default=100, ge=1, le=100)
    rate_limit_share: float = Field(default=0.5, gt=0, le=1)
    property_group: str = "closedloop"
    search_per_second: int = Field(default=4, ge=1)  # HubSpot allows 5 per token
    timeout_seconds: float = Field(default=60.0, gt=0)
    time_zone: TimeZoneName | None = Field(
        default=None,
        description="IANA time zone of the portal's dates; default: the portal's (account-info).",
    )
