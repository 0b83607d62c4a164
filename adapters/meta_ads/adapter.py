"""Meta Ads source: daily campaign spend from the Marketing API insights edge.

Streams read:

- ``spend``: ``AdAccount(act_id).get_insights(level=campaign, time_increment=1)`` with the
  official ``facebook-business`` SDK, cursor-paged -> :class:`Spend` (channel "Paid Social").
- ``touchpoints``: none. Meta has no click-level export; fbclid values captured on CRM records
  are resolved by the core.

Conversions API (CRM outcomes sent to the ``pixel_id`` dataset): see
:mod:`adapters.meta_ads.conversions`.

The SDK is used through a dedicated ``FacebookAdsApi`` instance (never ``FacebookAdsApi.init``,
which installs a crash reporter as ``sys.excepthook`` and sets a process-wide default api).
SDK errors are classified once in :func:`classify`.

Reference: https://developers.facebook.com/docs/marketing-api/insights and
https://developers.facebook.com/docs/marketing-api/error-reference
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from typing import Any, ClassVar, TypeVar

import requests
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.api import Cursor, FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters.meta_ads.conversions import EVENT_SUBCODES, EventRejected, MetaConversions
from connector.kernel import metrics
from connector.kernel.errors import ClosedloopError, ConfigError, TransientError
from connector.kernel.ratelimit import RateLimiter
from connector.kernel.records import Spend, Touchpoint
from connector.kernel.retry import call_with_retry
from connector.kernel.timeutil import utcnow

PLATFORM = "meta_ads"
FIELDS = [
    "campaign_id",
    "campaign_name",
    "spend",
    "clicks",
    "impressions",
    "account_currency",
    "date_start",
    "date_stop",
]
THROTTLE_CODES = {4, 17, 32, 613, *range(80000, 80015)}
TRANSIENT_CODES = {1, 2}
AUTH_CODES = {102, 104, 190, 10, *range(200, 300)}
AUTH_HINT = (
    "Check access_token in the meta_ads source settings: it must be a valid (not expired) token "
    "with the ads_read permission on the ad account."
)

T = TypeVar("T")


class MetaAdsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ad_account_id: str = Field(
        description="The ad account, act_<digits> (the prefix is added if missing)."
    )
    access_token: SecretStr
    api_version: str = Field("v21.0", pattern=r"^v\d+\.\d+$")
    endpoint: str = "https://graph.facebook.com"
    page_size: int = Field(500, ge=1, le=5000, description="Rows per insights page.")
    requests_per_minute: int = Field(60, ge=1, description="Client-side cap on API requests.")
    pixel_id: str | None = Field(
        None, pattern=r"^\d+$",
        description="Conversions API: the pixel (dataset) that receives conversions.yaml's events.",
    )  # fmt: skip
    test_event_code: str | None = Field(
        None, description="Conversions API: send as test events (Events Manager > Test events), "
        "not counted live. Remove it to go live: events sent as tests are sent again live.",
    )  # fmt: skip

    @field_validator("ad_account_id")
    @classmethod
    def _act(cls, value: str) -> str:
        digits = value.strip().removeprefix("act_")
        if not digits.isdigit():
            raise ValueError("expected an ad account id such as act_1234567890")
        return f"act_{digits}"


def regain_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Largest ``estimated_time_to_regain_access`` (minutes) in the usage header, in seconds."""
    raw = (headers or {}).get("X-Business-Use-Case-Usage")
    if not raw:
        return None
    try:
        usage = json.loads(raw)
        minutes = [
            float(entry.get("estimated_time_to_regain_access", 0))
            for entries in usage.values()
            for entry in entries
        ]
    except (ValueError, AttributeError, TypeError):
        return None
    return max(minutes, default=0.0) * 60


def classify(exc: FacebookRequestError) -> ClosedloopError:
    """The one table from a Graph API error to closedloop's error kinds."""
    code = exc.api_error_code()
    status = exc.http_status()
    what = f"meta_ads: Graph API error {code} (HTTP {status}): {exc.api_error_message()}"
    if code == 100 and exc.api_error_subcode() in EVENT_SUBCODES:
        body = exc.body() if isinstance(exc.body(), dict) else {}
        error = body.get("error") or {}
        title, detail = error.get("error_user_title", ""), error.get("error_user_msg", "")
        return EventRejected(f"{title}: {detail}" if title else exc.api_error_message())
    if (
        code in THROTTLE_CODES
        or code in TRANSIENT_CODES
        or exc.api_transient_error()
        or status >= 500
    ):
        return TransientError(what, retry_after=regain_seconds(exc.http_headers()) or None)
    if code in AUTH_CODES or status in (401, 403):
        return ConfigError(f"{what}. {AUTH_HINT}")
    return ConfigError(what)


class MetaAdsSource(MetaConversions):
    """SourceAdapter for one Meta ad account; also a ConversionSink (Conversions API)."""

    Settings: ClassVar[type[MetaAdsSettings]] = MetaAdsSettings

    def __init__(self, settings: MetaAdsSettings) -> None:
        self.settings = settings
        self._limiter = RateLimiter(PLATFORM, settings.requests_per_minute, 60.0)
        self._calls = 0

    def api_calls(self) -> int:
        return self._calls

    def close(self) -> None:
        """Nothing to release: each ``spend`` read opens and closes its own session."""

    def touchpoints(self, since: datetime) -> Iterator[Touchpoint]:
        return iter(())

    def spend(self, since: datetime) -> Iterator[Spend]:
        start, end = since.date(), utcnow().date()
        if start > end:
            return
        session, api = self._open()
        params = {
            "level": "campaign",
            "time_increment": 1,
            "time_range": {"since": start.isoformat(), "until": end.isoformat()},
            "limit": self.settings.page_size,
        }
        account = AdAccount(self.settings.ad_account_id, api=api)
        try:
            cursor: Cursor = self._call(
                api, lambda: account.get_insights(fields=FIELDS, params=params)
            )
            self._observe(cursor)
            while True:
                sends = len(cursor) == 0
                row = self._call(api, lambda: next(cursor, None), sends=sends)
                if row is None:
                    return
                if sends:
                    self._observe(cursor)
                yield self._spend(row)
        finally:
            session.requests.close()

    def _open(self) -> tuple[FacebookSession, FacebookAdsApi]:
        """A session and API of this adapter's own (never the SDK's process-wide default)."""
        session = FacebookSession(
            access_token=self.settings.access_token.get_secret_value(), timeout=60
        )
        session.GRAPH = self.settings.endpoint.rstrip("/")
        return session, FacebookAdsApi(session, api_version=self.settings.api_version)

    def _spend(self, row: Mapping[str, Any]) -> Spend:
        return Spend(
            platform=PLATFORM,
            account=self.settings.ad_account_id,
            campaign_id=str(row["campaign_id"]),
            campaign=row.get("campaign_name", ""),
            day=date.fromisoformat(row["date_start"]),
            cost=float(row.get("spend", 0)),
            currency=row.get("account_currency", ""),
            clicks=int(row.get("clicks", 0)),
            impressions=int(row.get("impressions", 0)),
            channel="Paid Social",
        )

    def _call(self, api: FacebookAdsApi, fn: Callable[[], T], sends: bool = True) -> T:
        """Run one SDK step that may send a request: rate-limited, counted, classified, retried."""

        def attempt() -> T:
            if sends:
                self._limiter.acquire()
            before = api.get_num_requests_attempted()
            try:
                return fn()
            except FacebookRequestError as exc:
                raise classify(exc) from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise TransientError(
                    f"meta_ads: {type(exc).__name__} talking to the Graph API"
                ) from exc
            finally:
                sent = api.get_num_requests_attempted() - before
                self._calls += sent
                if sent:
                    metrics.API_CALLS.labels(PLATFORM).inc(sent)

        return call_with_retry(attempt)

    def _observe(self, cursor: Cursor) -> None:
        """Hold off while Meta says the account is throttled (usage header of the last page)."""
        wait = regain_seconds(cursor.headers())
        if wait:
            self._limiter.observe(0, resets_in=wait)
