"""LinkedIn Ads source: daily campaign spend from the Marketing API (versioned ``/rest``).

Streams read:

- ``spend``: ``GET /rest/adAnalytics?q=analytics&pivot=CAMPAIGN&timeGranularity=DAILY`` for the
  sponsored account, in windows of ``days_per_request`` days (the endpoint has no paging and
  caps its answer), named through ``GET /rest/adAccounts/{id}/adCampaigns?q=search`` (cursor
  pages) -> :class:`Spend` in the account's currency (channel "Paid Social").
- ``touchpoints``: none. LinkedIn has no click-level export; ``li_fat_id`` values captured on
  CRM records are resolved by the core.

Conversions API (CRM outcomes as conversion events): see :mod:`adapters.linkedin_ads.conversions`.

No maintained official Python client exists, so this is a thin REST client on
:mod:`adapters._http`, with Rest.li 2.0 query encoding built here (``dateRange=(start:(...))``,
``accounts=List(<url-encoded urn>)``).

Reference: https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/ads-reporting
and https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads/account-structure/create-and-manage-campaigns
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters._http import JsonApi, VendorError, json_body
from adapters.linkedin_ads.conversions import LinkedInConversions
from connector.kernel.ratelimit import RateLimiter
from connector.kernel.records import Spend, Touchpoint
from connector.kernel.timeutil import utcnow

PLATFORM = "linkedin_ads"
ANALYTICS_FIELDS = "costInLocalCurrency,clicks,impressions,dateRange,pivotValues"
CAMPAIGN_PAGE_SIZE = 1000


class LinkedInAdsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str = Field(description="The sponsored ad account id (digits or its urn).")
    access_token: SecretStr
    currency: str | None = Field(
        None, description="Account currency; read from the account when unset."
    )
    api_version: str = Field(
        "202411", pattern=r"^\d{6}(\.\d{2})?$", description="LinkedIn-Version (YYYYMM)."
    )
    endpoint: str = "https://api.linkedin.com"
    days_per_request: int = Field(30, ge=1, le=365)
    requests_per_minute: int = Field(100, ge=1, description="Client-side cap on API requests.")

    @field_validator("account_id")
    @classmethod
    def _account(cls, value: str) -> str:
        digits = value.strip().removeprefix("urn:li:sponsoredAccount:")
        if not digits.isdigit():
            raise ValueError("expected a sponsored account id such as 508123456")
        return digits


def read_error(response: requests.Response) -> VendorError:
    """LinkedIn's ``{"status","serviceErrorCode","code","message"}`` -> VendorError."""
    body = json_body(response)
    if not isinstance(body, dict):
        return VendorError(f"unexpected error body ({response.reason})")
    code = body.get("code") or body.get("serviceErrorCode") or ""
    return VendorError(f"{code}: {body.get('message', '')}".strip(": "))


def restli_date(day: date) -> str:
    return f"(year:{day.year},month:{day.month},day:{day.day})"


def analytics_query(account_id: str, start: date, end: date) -> str:
    """The adAnalytics query string, Rest.li 2.0 encoded (structure bare, URNs encoded)."""
    urn = quote(f"urn:li:sponsoredAccount:{account_id}", safe="")
    return "&".join(
        [
            "q=analytics",
            "pivot=CAMPAIGN",
            "timeGranularity=DAILY",
            f"dateRange=(start:{restli_date(start)},end:{restli_date(end)})",
            f"accounts=List({urn})",
            f"fields={ANALYTICS_FIELDS}",
        ]
    )


class LinkedInAdsSource(LinkedInConversions):
    """SourceAdapter for one LinkedIn sponsored ad account; also a ConversionSink (Conversions
    API events, :mod:`adapters.linkedin_ads.conversions`)."""

    Settings: ClassVar[type[LinkedInAdsSettings]] = LinkedInAdsSettings

    def __init__(self, settings: LinkedInAdsSettings) -> None:
        self.settings = settings
        self._http = JsonApi(
            PLATFORM,
            settings.endpoint,
            headers=self._headers,
            read_error=read_error,
            limiter=RateLimiter(PLATFORM, settings.requests_per_minute, 60.0),
            auth_hint="Check access_token in the linkedin_ads source settings: it must be a valid "
            "token with the r_ads and r_ads_reporting scopes for this ad account (and "
            "rw_conversions to send conversions).",
        )

    def api_calls(self) -> int:
        return self._http.calls

    def close(self) -> None:
        self._http.close()

    def touchpoints(self, since: datetime) -> Iterator[Touchpoint]:
        return iter(())

    def spend(self, since: datetime) -> Iterator[Spend]:
        try:
            names = self._campaign_names()
            currency = self.settings.currency or self._account()["currency"]
            today = utcnow().date()
            start = since.date()
            while start <= today:
                end = min(start + timedelta(days=self.settings.days_per_request - 1), today)
                path = "/rest/adAnalytics?" + analytics_query(self.settings.account_id, start, end)
                for element in self._http.call("GET", path).get("elements", []):
                    yield self._spend(element, names, currency)
                start = end + timedelta(days=1)
        finally:
            self._http.close()

    def _spend(self, element: dict[str, Any], names: dict[str, str], currency: str) -> Spend:
        campaign_id = element["pivotValues"][0].rsplit(":", 1)[-1]
        first = element["dateRange"]["start"]
        return Spend(
            platform=PLATFORM,
            account=self.settings.account_id,
            campaign_id=campaign_id,
            campaign=names.get(campaign_id, ""),
            day=date(first["year"], first["month"], first["day"]),
            cost=float(element.get("costInLocalCurrency") or 0),
            currency=currency,
            clicks=int(element.get("clicks") or 0),
            impressions=int(element.get("impressions") or 0),
            channel="Paid Social",
        )

    def _campaign_names(self) -> dict[str, str]:
        path = f"/rest/adAccounts/{self.settings.account_id}/adCampaigns"
        names: dict[str, str] = {}
        token: str | None = None
        while True:
            params = {"q": "search", "pageSize": str(CAMPAIGN_PAGE_SIZE)}
            if token:
                params["pageToken"] = token
            body = self._http.call("GET", path, params=params)
            names.update({str(c["id"]): c.get("name", "") for c in body.get("elements", [])})
            token = (body.get("metadata") or {}).get("nextPageToken")
            if not token:
                return names

    def _account(self) -> dict[str, Any]:
        body: dict[str, Any] = self._http.call(
            "GET", f"/rest/adAccounts/{self.settings.account_id}"
        )
        return body

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.settings.access_token.get_secret_value()}",
            "LinkedIn-Version": self.settings.api_version,
            "X-Restli-Protocol-Version": "2.0.0",
        }
