"""GA4 source: sessions of identified visitors, read with the GA4 Data API (v1beta).

Streams read:

- ``touchpoints``: one ``runReport`` over the date window ``since`` .. today (property time
  zone), dimensions [identity custom dimension, dateHourMinute, sessionSource, sessionMedium,
  sessionCampaignName, landingPage] and metric ``sessions``, paged with ``limit``/``offset``.
  Each row becomes one :class:`~connector.kernel.records.Touchpoint` (a row of several
  sessions too); rows without an identity (``(not set)``) are skipped. GA4's own values pass
  through unchanged (``(direct)`` / ``(none)`` / ``(not set)``): the channel rules know GA4's
  conventions.
- ``spend``: none (GA4 holds no cost data for this connector).

``check()`` asks the metadata endpoint whether the property accepts the dimensions used.

API reference: https://developers.google.com/analytics/devguides/reporting/data/v1/rest
Client library: https://cloud.google.com/python/docs/reference/analyticsdata/latest
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import (
    DateRange,
    Dimension,
    GetMetadataRequest,
    Metadata,
    Metric,
    OrderBy,
    RunReportRequest,
    RunReportResponse,
)
from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_errors
from google.auth.credentials import Credentials
from google.oauth2 import service_account
from google.oauth2.credentials import Credentials as BearerCredentials
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connector.kernel import metrics
from connector.kernel.errors import BudgetExhausted, ConfigError, TransientError
from connector.kernel.identity import normalise_id
from connector.kernel.ratelimit import RateLimiter
from connector.kernel.records import IdentityKind, Spend, Touchpoint
from connector.kernel.retry import call_with_retry

log = logging.getLogger(__name__)

SYSTEM = "ga4"
SCOPES = ["https://www.googleapis.com/auth/analytics.readonly"]
REPORT_DIMENSIONS = (
    "dateHourMinute",
    "sessionSource",
    "sessionMedium",
    "sessionCampaignName",
    "landingPage",
)
REPORT_METRIC = "sessions"


class Ga4Settings(BaseModel):
    """How to reach one GA4 property; exactly one of ``credentials_file`` / ``access_token``."""

    model_config = ConfigDict(extra="forbid")

    property_id: str
    credentials_file: Path | None = None
    access_token: SecretStr | None = None
    api_endpoint: str | None = None
    identity_dimension: str = "customUser:ga_client_id"
    identity_kind: IdentityKind = IdentityKind.GA_CLIENT_ID
    page_size: int = Field(default=10_000, ge=1, le=250_000)
    requests_per_hour: int = Field(default=2000, ge=1)

    @field_validator("property_id")
    @classmethod
    def _numeric_property(cls, value: str) -> str:
        number = value.strip().removeprefix("properties/")
        if not number.isdigit():
            raise ValueError(
                f"property_id must be the numeric GA4 property id (Admin > Property details), "
                f"got {value!r}"
            )
        return number

    @model_validator(mode="after")
    def _one_credential(self) -> Ga4Settings:
        if (self.credentials_file is None) == (self.access_token is None):
            raise ValueError(
                "set exactly one of credentials_file (a service-account JSON key) or "
                "access_token (an OAuth bearer token)"
            )
        return self


def _retry_after(error: google_errors.GoogleAPICallError) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None


def classify(error: Exception, settings: Ga4Settings) -> Exception:
    """The one translation of client-library errors into closedloop's error classes."""
    prop = f"GA4 property {settings.property_id}"
    if isinstance(error, google_errors.Unauthorized | auth_errors.RefreshError):
        return ConfigError(
            f"{prop}: the credentials were rejected (401 UNAUTHENTICATED). Check that "
            "access_token is current, or that credentials_file is a valid service-account key."
        )
    if isinstance(error, google_errors.Forbidden):
        return ConfigError(
            f"{prop}: permission denied (403). Check the property id, that the Google Analytics "
            "Data API is enabled for the project, and that the service account has the Viewer "
            "role on the property (Admin > Property access management)."
        )
    if isinstance(error, google_errors.BadRequest):
        if settings.identity_dimension in error.message:
            name = settings.identity_dimension.partition(":")[2] or settings.identity_dimension
            return ConfigError(
                f"{prop} does not know the dimension {settings.identity_dimension}: register it "
                f"under Admin > Custom definitions (scope and parameter '{name}'), or change "
                "identity_dimension."
            )
        return ConfigError(f"{prop}: the report request was rejected: {error.message}")
    if isinstance(error, google_errors.TooManyRequests):  # gRPC's ResourceExhausted included
        if "tokens per" in error.message.lower():  # hourly / daily token quota: wait for reset
            return BudgetExhausted(
                f"{prop}: GA4 token quota used up ({error.message}); re-run after it resets"
            )
        return TransientError(f"{prop}: rate limited: {error.message}", _retry_after(error))
    if isinstance(
        error,
        google_errors.InternalServerError
        | google_errors.BadGateway
        | google_errors.ServiceUnavailable
        | google_errors.GatewayTimeout,
    ):
        return TransientError(f"{prop}: server error {error.code}", _retry_after(error))
    if isinstance(error, requests.ConnectionError | requests.Timeout | auth_errors.TransportError):
        return TransientError(f"{prop}: connection failed: {type(error).__name__}")
    return error


def _credentials(settings: Ga4Settings) -> Credentials:
    if settings.access_token is not None:
        token = settings.access_token.get_secret_value()
        return BearerCredentials(token=token)  # type: ignore[no-untyped-call]
    try:
        return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call,no-any-return]
            str(settings.credentials_file), scopes=SCOPES
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"GA4 credentials_file {settings.credentials_file} is not a readable service-account "
            f"JSON key ({type(exc).__name__})"
        ) from None


def touchpoint_key(values: list[str]) -> str:
    """Stable across re-reads: a hash of (identity, dateHourMinute, source, medium, campaign,
    landing page)."""
    return hashlib.sha256("\x1f".join(values).encode()).hexdigest()[:32]


class Ga4Source:
    """SourceAdapter for one GA4 property (registry path ``adapters.ga4.adapter:Ga4Source``)."""

    Settings: ClassVar[type[Ga4Settings]] = Ga4Settings

    def __init__(self, settings: Ga4Settings) -> None:
        self.settings = settings
        options = (
            ClientOptions(api_endpoint=settings.api_endpoint) if settings.api_endpoint else None
        )
        self._client = BetaAnalyticsDataClient(
            credentials=_credentials(settings), transport="rest", client_options=options
        )
        # Close the HTTP session with the adapter, so no socket is left to the garbage collector.
        self._finalizer = weakref.finalize(self, self._client.transport.close)
        self._limiter = RateLimiter(SYSTEM, settings.requests_per_hour, 3600)
        self._calls = 0
        self._quota_spent = ""
        self.skipped_without_identity = 0

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Ga4Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def api_calls(self) -> int:
        return self._calls

    # -- HTTP ------------------------------------------------------------------------------
    def _call(self, method: Any, request: Any) -> Any:
        def attempt() -> Any:
            if self._quota_spent:
                raise BudgetExhausted(self._quota_spent)
            self._limiter.acquire()
            self._calls += 1
            metrics.API_CALLS.labels(SYSTEM).inc()
            try:
                return method(request=request)
            except (
                google_errors.GoogleAPICallError,
                auth_errors.GoogleAuthError,
                requests.RequestException,
            ) as exc:
                translated = classify(exc, self.settings)
                if translated is exc:
                    raise
                raise translated from exc

        return call_with_retry(attempt)

    def _observe_quota(self, response: RunReportResponse) -> None:
        """Stop before a request GA4 would refuse: a spent token quota only resets later."""
        quota = response.property_quota
        for name, resets in (("tokens_per_hour", "the next hour"), ("tokens_per_day", "midnight")):
            if name in quota and getattr(quota, name).remaining <= 0:
                self._quota_spent = (
                    f"properties/{self.settings.property_id}: GA4 {name.replace('_', ' ')} "
                    f"quota used up; the run resumes after {resets} (property time)"
                )

    # -- streams ---------------------------------------------------------------------------
    def touchpoints(self, since: datetime) -> Iterator[Touchpoint]:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        floor = since.astimezone(UTC).replace(second=0, microsecond=0)
        # GA dates are in the property's time zone (unknown before the first answer): start a
        # day early and drop what precedes ``since`` once each row's instant is known.
        start = (floor - timedelta(days=1)).date()
        request = RunReportRequest(
            property=f"properties/{self.settings.property_id}",
            dimensions=[Dimension(name=self.settings.identity_dimension)]
            + [Dimension(name=name) for name in REPORT_DIMENSIONS],
            metrics=[Metric(name=REPORT_METRIC)],
            date_ranges=[DateRange(start_date=start.isoformat(), end_date="today")],
            order_bys=[
                OrderBy(dimension=OrderBy.DimensionOrderBy(dimension_name=name))
                for name in (
                    "dateHourMinute",
                    self.settings.identity_dimension,
                    *REPORT_DIMENSIONS[1:],
                )
            ],
            limit=self.settings.page_size,
            return_property_quota=True,
        )
        skipped = 0
        offset = 0
        while True:
            request.offset = offset
            response: RunReportResponse = self._call(self._client.run_report, request)
            self._observe_quota(response)
            zone = self._zone(response.metadata.time_zone)
            for row in response.rows:
                touchpoint = self._touchpoint([v.value for v in row.dimension_values], zone)
                if touchpoint is None:
                    skipped += 1
                elif touchpoint.occurred_at >= floor:
                    yield touchpoint
            offset += len(response.rows)
            if not response.rows or offset >= response.row_count:
                break
        self.skipped_without_identity += skipped
        if skipped:
            log.info(
                "GA4 property %s: skipped %d rows without %s",
                self.settings.property_id,
                skipped,
                self.settings.identity_dimension,
            )

    def spend(self, since: datetime) -> Iterator[Spend]:
        return iter(())

    def _touchpoint(self, values: list[str], zone: ZoneInfo) -> Touchpoint | None:
        identity, minute, source, medium, campaign, landing_page = values
        identity = normalise_id(identity)
        if not identity:
            return None
        local = datetime.strptime(minute, "%Y%m%d%H%M").replace(tzinfo=zone)
        return Touchpoint(
            source=SYSTEM,
            key=touchpoint_key([identity, minute, source, medium, campaign, landing_page]),
            occurred_at=local.astimezone(UTC),
            identity_kind=self.settings.identity_kind,
            identity_value=identity,
            utm_source=source,
            utm_medium=medium,
            utm_campaign=campaign,
            landing_page=landing_page,
        )

    def _zone(self, name: str) -> ZoneInfo:
        try:
            return ZoneInfo(name or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"GA4 property {self.settings.property_id} reports an unknown time zone {name!r}"
            ) from None

    # -- doctor ----------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Problems that would stop a sync, found through the property's metadata."""
        request = GetMetadataRequest(name=f"properties/{self.settings.property_id}/metadata")
        try:
            metadata: Metadata = self._call(self._client.get_metadata, request)
        except ConfigError as exc:  # a transient failure is not a problem of the setup: raised
            return [str(exc)]
        dimensions = {d.api_name for d in metadata.dimensions}
        dimensions |= {name for d in metadata.dimensions for name in d.deprecated_api_names}
        available_metrics = {m.api_name for m in metadata.metrics}
        problems = []
        identity = self.settings.identity_dimension
        if identity not in dimensions:
            name = identity.partition(":")[2] or identity
            problems.append(
                f"GA4 property {self.settings.property_id} has no dimension {identity}: register "
                f"a custom dimension for '{name}' under Admin > Custom definitions."
            )
        for name in REPORT_DIMENSIONS:
            if name not in dimensions:
                problems.append(
                    f"GA4 property {self.settings.property_id} lacks the dimension {name}."
                )
        if REPORT_METRIC not in available_metrics:
            problems.append(
                f"GA4 property {self.settings.property_id} lacks the metric {REPORT_METRIC}."
            )
        return problems
