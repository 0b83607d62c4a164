"""Google Ads source: daily campaign spend and gclid clicks, over the REST API (v26).

Streams read, both with ``POST {endpoint}/v26/customers/{cid}/googleAds:searchStream``:

- ``spend``: ``FROM campaign`` segmented by ``segments.date`` -> :class:`Spend`
  (cost = ``cost_micros / 1e6`` in ``customer.currency_code``, channel "Paid Search").
- ``touchpoints``: ``FROM click_view``, one query per day as the API requires, for at most the
  last 90 days -> :class:`Touchpoint` keyed by gclid at the start of the click's day (UTC).

The official ``google-ads`` client speaks gRPC only: it needs a TLS channel with OAuth call
credentials (no plain local endpoint for the emulator) and weighs 170 MB, so this adapter is a
thin REST client on :mod:`adapters._http` against the same API's documented REST surface.
Authentication: an OAuth access token, or a refresh token with the OAuth client id/secret
(exchanged at ``token_uri``), plus the developer token and, for manager access,
``login-customer-id``.

Offline conversions (``uploadClickConversions``, ``uploadConversionAdjustments``): see
:mod:`adapters.google_ads.conversions`.

Reference: https://developers.google.com/google-ads/api/rest/reference/rest/v26/customers.googleAds/searchStream
and https://developers.google.com/google-ads/api/fields/v26/click_view
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from adapters._http import JsonApi, VendorError, json_body
from adapters.google_ads.conversions import GoogleAdsConversions
from connector.kernel.ratelimit import RateLimiter
from connector.kernel.records import IdentityKind, Spend, Touchpoint
from connector.kernel.timeutil import start_of_day, utcnow

PLATFORM = "google_ads"
API_VERSION = "v26"
CLICK_VIEW_MAX_DAYS = 90

SPEND_QUERY = (
    "SELECT campaign.id, campaign.name, segments.date, metrics.cost_micros, metrics.clicks, "
    "metrics.impressions, customer.currency_code FROM campaign "
    "WHERE segments.date BETWEEN '{start}' AND '{end}'"
)
CLICK_QUERY = (
    "SELECT click_view.gclid, segments.date, campaign.id, campaign.name, ad_group.name, "
    "click_view.keyword_info.text FROM click_view WHERE segments.date = '{day}'"
)


def _customer_id(value: str) -> str:
    digits = value.replace("-", "").strip()
    if not re.fullmatch(r"\d{10}", digits):
        raise ValueError("expected a 10-digit Google Ads customer id such as 123-456-7890")
    return digits


class GoogleAdsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str = Field(description="The account read (10 digits, dashes allowed).")
    login_customer_id: str | None = Field(
        None, description="The manager account, when access is through one."
    )
    developer_token: SecretStr
    access_token: SecretStr | None = Field(
        None, description="A ready OAuth access token (or use refresh_token)."
    )
    refresh_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    token_uri: str = "https://oauth2.googleapis.com/token"
    endpoint: str = "https://googleads.googleapis.com"
    requests_per_minute: int = Field(300, ge=1, description="Client-side cap on API requests.")

    @field_validator("customer_id", "login_customer_id")
    @classmethod
    def _ids(cls, value: str | None) -> str | None:
        return _customer_id(value) if value else None

    @model_validator(mode="after")
    def _credentials(self) -> GoogleAdsSettings:
        refresh = (self.refresh_token, self.client_id, self.client_secret)
        if self.access_token is None and not all(refresh):
            raise ValueError("give access_token, or refresh_token with client_id and client_secret")
        return self


def _seconds(duration: object) -> float | None:
    """A protobuf JSON Duration (``"30s"``, ``"1.5s"``) in seconds."""
    try:
        return float(str(duration).removesuffix("s")) if duration else None
    except ValueError:
        return None


def read_error(response: requests.Response) -> VendorError:
    """Google's error body (a bare object, or wrapped in a list by searchStream) -> VendorError."""
    body = json_body(response)
    if isinstance(body, list) and body:
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # the OAuth token endpoint: {"error": "invalid_grant", ...}
        return VendorError(f"{error}: {body.get('error_description', '')}".rstrip(": "))
    if not isinstance(error, dict):
        return VendorError(f"unexpected error body ({response.reason})")
    codes, retry_after = [], None
    for detail in error.get("details") or []:
        for failure in detail.get("errors") or []:
            for kind, code in (failure.get("errorCode") or {}).items():
                codes.append(f"{kind}.{code}: {failure.get('message', '')}".strip())
            quota = (failure.get("details") or {}).get("quotaErrorDetails", {})
            retry_after = _seconds(quota.get("retryDelay")) or retry_after
    message = f"{error.get('status', '')} {'; '.join(codes) or error.get('message', '')}".strip()
    return VendorError(message, retry_after=retry_after)


class GoogleAdsSource(GoogleAdsConversions):
    """SourceAdapter for one Google Ads customer account; also a ConversionSink (its offline
    conversion uploads are in :mod:`adapters.google_ads.conversions`)."""

    Settings: ClassVar[type[GoogleAdsSettings]] = GoogleAdsSettings
    api_version: ClassVar[str] = API_VERSION

    def __init__(self, settings: GoogleAdsSettings) -> None:
        self.settings = settings
        self._token: str | None = (
            settings.access_token.get_secret_value() if settings.access_token else None
        )
        self._token_expires = float("inf")
        self._http = JsonApi(
            PLATFORM,
            settings.endpoint,
            headers=self._headers,
            read_error=read_error,
            limiter=RateLimiter(PLATFORM, settings.requests_per_minute, 60.0),
            auth_hint="Check developer_token and the OAuth access/refresh token in the google_ads "
            "source settings, and login_customer_id when the account is reached through a manager.",
        )

    def api_calls(self) -> int:
        return self._http.calls

    def close(self) -> None:
        self._http.close()

    def spend(self, since: datetime) -> Iterator[Spend]:
        start, end = since.date(), utcnow().date()
        if start > end:
            return
        query = SPEND_QUERY.format(start=start.isoformat(), end=end.isoformat())
        try:
            for row in self._search(query):
                metrics = row.get("metrics", {})
                campaign = row.get("campaign", {})
                yield Spend(
                    platform=PLATFORM,
                    account=self.settings.customer_id,
                    campaign_id=str(campaign.get("id", "")),
                    campaign=campaign.get("name", ""),
                    day=date.fromisoformat(row["segments"]["date"]),
                    cost=int(metrics.get("costMicros", 0)) / 1_000_000,
                    currency=row.get("customer", {}).get("currencyCode", ""),
                    clicks=int(metrics.get("clicks", 0)),
                    impressions=int(metrics.get("impressions", 0)),
                    channel="Paid Search",
                )
        finally:
            self._http.close()

    def touchpoints(self, since: datetime) -> Iterator[Touchpoint]:
        today = utcnow().date()
        day = max(since.date(), today - timedelta(days=CLICK_VIEW_MAX_DAYS - 1))
        try:
            while day <= today:
                for row in self._search(CLICK_QUERY.format(day=day.isoformat())):
                    touch = self._touchpoint(row, day)
                    if touch is not None:
                        yield touch
                day += timedelta(days=1)
        finally:
            self._http.close()

    def _touchpoint(self, row: Mapping[str, Any], day: date) -> Touchpoint | None:
        gclid = row.get("clickView", {}).get("gclid", "")
        if not gclid:
            return None
        campaign = row.get("campaign", {})
        return Touchpoint(
            source=PLATFORM,
            key=gclid,
            occurred_at=start_of_day(day),
            identity_kind=IdentityKind.GCLID,
            identity_value=gclid,
            utm_source="google",
            utm_medium="cpc",
            utm_campaign=campaign.get("name", ""),
            campaign_id=str(campaign.get("id", "")),
        )

    def _search(self, query: str) -> Iterator[dict[str, Any]]:
        path = f"/{API_VERSION}/customers/{self.settings.customer_id}/googleAds:searchStream"
        for batch in self._post(path, {"query": query}):
            yield from batch.get("results", [])

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        if self._token is None or time.monotonic() >= self._token_expires:
            self._refresh()
        return self._http.call("POST", path, json=body)

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._token}",
            "developer-token": self.settings.developer_token.get_secret_value(),
        }
        if self.settings.login_customer_id:
            headers["login-customer-id"] = self.settings.login_customer_id
        return headers

    def _refresh(self) -> None:
        s = self.settings
        assert s.refresh_token and s.client_id and s.client_secret
        form = {
            "grant_type": "refresh_token",
            "refresh_token": s.refresh_token.get_secret_value(),
            "client_id": s.client_id,
            "client_secret": s.client_secret.get_secret_value(),
        }
        body = self._http.call("POST", s.token_uri, data=form, authorised=False)
        self._token = body["access_token"]
        self._token_expires = time.monotonic() + float(body.get("expires_in", 3600)) - 60
