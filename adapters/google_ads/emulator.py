"""A wire-faithful Google Ads API (REST, v26) emulator: reports, conversion uploads and OAuth.

Serves ``POST /v26/customers/{cid}/googleAds:searchStream`` with a GAQL subset parser (the
``campaign``, ``click_view`` and ``conversion_action`` queries: field list, ``FROM``, ``WHERE``
conditions on ``segments.date`` and, for ``conversion_action``, ``field = value`` / ``IN (...)``
joined by ``AND``), answering a JSON array of batches of at most 10,000 rows, int64 as strings,
camelCase field names. Errors use the Google Ads error body (``error.details[].@type =
...GoogleAdsFailure``): 401 UNAUTHENTICATED, 403 PERMISSION_DENIED
(``DEVELOPER_TOKEN_NOT_APPROVED``, ``USER_PERMISSION_DENIED``), 429 RESOURCE_EXHAUSTED with
``quotaErrorDetails.retryDelay``, 400 INVALID_ARGUMENT for query errors (a ``click_view`` query
without a single-day filter or older than 90 days). ``POST /token`` is a minimal OAuth token
endpoint for the refresh-token flow.

Offline conversions (seed actions with :meth:`Emulator.add_conversion_action`; the clicks of
``click_view`` are the known clicks):

- ``POST /v26/customers/{cid}:uploadClickConversions``: ClickConversions by ``gclid``,
  ``gbraid``/``wbraid`` or hashed ``userIdentifiers`` (enhanced conversions for leads), at most
  2,000 per request, ``partialFailure: true`` required. Failed rows answer ``{}`` in ``results``
  and a ``partialFailureError`` (code 3, one GoogleAdsFailure error per row, located at
  ``conversions[i]``): ``UNPARSEABLE_GCLID``/``_GBRAID``/``_WBRAID``, ``CONVERSION_PRECEDES_EVENT``,
  ``EXPIRED_EVENT`` (click before the action's click-through window), ``TOO_RECENT_EVENT`` (click
  under 6 hours old), ``NO_CONVERSION_ACTION_FOUND`` (unknown, removed or hidden action),
  ``INVALID_CONVERSION_ACTION_TYPE``, ``CLICK_CONVERSION_ALREADY_EXISTS`` (same click, action and
  time), ``ORDER_ID_ALREADY_IN_USE``, ``DUPLICATE_ORDER_ID`` / ``DUPLICATE_CLICK_CONVERSION_IN_
  REQUEST``, ``CLICK_NOT_FOUND`` (with ``debugEnabled``), ``INVALID_USER_IDENTIFIER``,
  ``UNSUPPORTED_USER_IDENTIFIER``, ``CUSTOMER_NOT_ENABLED_ENHANCED_CONVERSIONS_FOR_LEADS``,
  ``CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS`` and ``dateError`` for a malformed time.
- ``POST /v26/customers/{cid}:uploadConversionAdjustments``: RESTATEMENT / RETRACTION of an
  accepted conversion by ``orderId`` or ``gclidDateTimePair``, with ``CONVERSION_NOT_FOUND``,
  ``CONVERSION_ALREADY_RETRACTED``, ``ADJUSTMENT_PRECEDES_CONVERSION``, ``CONVERSION_EXPIRED``
  (over 54 days), ``TOO_RECENT_CONVERSION`` (under 24 hours), ``RESTATEMENT_ALREADY_EXISTS``,
  ``MORE_RECENT_RESTATEMENT_FOUND``, ``DUPLICATE_ADJUSTMENT_IN_REQUEST`` and
  ``GCLID_DATE_TIME_PAIR_AND_ORDER_ID_BOTH_SET``.

Whole-request errors of both: ``PARTIAL_FAILURE_MODE_REQUIRED``, ``TOO_MANY_..._IN_REQUEST``,
``INVALID_JOB_ID``, and the front end's ``Invalid JSON payload received`` 400 for an unknown
field (snake_case names are read like camelCase, as Google's parser does). Inspect
``conversions`` and ``adjustments`` (accepted, each once) and ``rejected`` (rows with reasons).

Reference: https://developers.google.com/google-ads/api/rest/reference/rest/v26/customers.googleAds/searchStream,
https://developers.google.com/google-ads/api/rest/reference/rest/v26/customers/uploadClickConversions,
https://developers.google.com/google-ads/api/rest/reference/rest/v26/customers/uploadConversionAdjustments,
https://developers.google.com/google-ads/api/reference/rpc/v26/ConversionUploadErrorEnum.ConversionUploadError
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from adapters._emulator import EmulatorServer, Request, Response, route
from connector.kernel.timeutil import start_of_day, utcnow

VERSION = "v26"
BATCH_SIZE = 10_000
SAMPLE_TODAY = date(2026, 11, 20)
SAMPLE_CONVERSION_ACTIONS = {
    "7001": "CRM lead created",
    "7002": "CRM opportunity created",
    "7003": "CRM closed won",
}
FAILURE_TYPE = f"type.googleapis.com/google.ads.googleads.{VERSION}.errors.GoogleAdsFailure"

# GAQL field -> (JSON path in the row); which fields each resource may select.
_CAMPAIGN_FIELDS = {
    "campaign.id",
    "campaign.name",
    "campaign.resource_name",
    "segments.date",
    "metrics.cost_micros",
    "metrics.clicks",
    "metrics.impressions",
    "customer.id",
    "customer.currency_code",
    "customer.resource_name",
}
_CLICK_FIELDS = {
    "click_view.gclid",
    "click_view.keyword_info.text",
    "click_view.resource_name",
    "segments.date",
    "campaign.id",
    "campaign.name",
    "ad_group.id",
    "ad_group.name",
    "customer.id",
    "customer.currency_code",
}
_CONVERSION_ACTION_FIELDS = {
    "conversion_action.id",
    "conversion_action.name",
    "conversion_action.status",
    "conversion_action.type",
    "conversion_action.resource_name",
    "conversion_action.click_through_lookback_window_days",
    "conversion_action.value_settings.always_use_default_value",
    "customer.id",
}
_RESOURCES = {
    "campaign": _CAMPAIGN_FIELDS,
    "click_view": _CLICK_FIELDS,
    "conversion_action": _CONVERSION_ACTION_FIELDS,
}

_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<resource>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+.+?)?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_BETWEEN = re.compile(
    r"^segments\.date\s+BETWEEN\s+'(\d{4}-\d{2}-\d{2})'\s+AND\s+'(\d{4}-\d{2}-\d{2})'$",
    re.IGNORECASE,
)
_COMPARE = re.compile(r"^segments\.date\s*(=|>=|<=|>|<)\s*'(\d{4}-\d{2}-\d{2})'$", re.IGNORECASE)
# Attribute filters (``conversion_action.status = 'ENABLED'``, ``... IN ('A', 'B')``); enum and
# id values may come quoted or bare, as GAQL allows.
_FIELD_EQUALS = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+)\s*(=|!=)\s*'?([^']*?)'?$", re.IGNORECASE)
_FIELD_IN = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+)\s+(NOT\s+IN|IN)\s*\((.*)\)$", re.IGNORECASE)
_SPLIT_AND = re.compile(r"\s+AND\s+(?!'\d{4}-\d{2}-\d{2}')", re.IGNORECASE)


class QueryError(Exception):
    def __init__(self, error_code: dict[str, str], message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


@dataclass
class Condition:
    field: str
    values: set[str]
    negated: bool = False

    def __call__(self, value: object) -> bool:
        return (str(value) in self.values) != self.negated


@dataclass
class DateFilter:
    low: date | None = None
    high: date | None = None
    conditions: list[Condition] = dataclasses.field(default_factory=list)

    def single_day(self) -> date | None:
        return self.low if self.low is not None and self.low == self.high else None

    def __contains__(self, day: date) -> bool:
        return (self.low is None or day >= self.low) and (self.high is None or day <= self.high)


@dataclass
class Daily:
    cost_micros: int
    clicks: int
    impressions: int


@dataclass
class Click:
    gclid: str  # the click id: a gclid, or a gbraid / wbraid when ``kind`` says so
    campaign_id: str
    day: date
    ad_group: str
    keyword: str
    kind: str = "gclid"
    at: datetime | None = None  # when unknown, the start of ``day`` (UTC)

    @property
    def clicked_at(self) -> datetime:
        return self.at or start_of_day(self.day)


# -- offline conversion uploads ----------------------------------------------------------------
MAX_UPLOAD_ROWS = 2000  # "Upload fewer than 2001 events in a single request" (both methods)
UPLOADABLE_TYPES = {"UPLOAD_CLICKS"}
ADJUSTABLE_TYPES = {"UPLOAD_CLICKS", "WEBPAGE", "SALESFORCE"}
TOO_RECENT_CLICK = timedelta(hours=6)
TOO_RECENT_TO_ADJUST = timedelta(hours=24)
TOO_OLD_TO_ADJUST = timedelta(days=54)
MAX_USER_IDENTIFIERS = 5
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
_ACTION_NAME = re.compile(r"^customers/(\d+)/conversionActions/(\d+)$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_CONSENT_STATUSES = ["UNSPECIFIED", "UNKNOWN", "GRANTED", "DENIED"]  # in enum-number order
_ADJUSTMENT_TYPES = {"RESTATEMENT", "RETRACTION", "ENHANCEMENT"}

# The proto3-JSON fields each message accepts (lowerCamel; snake_case is accepted too).
_UPLOAD_REQUEST = frozenset(
    {"conversions", "partialFailure", "validateOnly", "debugEnabled", "jobId"}
)
_CLICK_CONVERSION = frozenset(
    {
        "gclid",
        "gbraid",
        "wbraid",
        "conversionAction",
        "conversionDateTime",
        "conversionValue",
        "currencyCode",
        "orderId",
        "externalAttributionData",
        "customVariables",
        "cartData",
        "userIdentifiers",
        "conversionEnvironment",
        "consent",
        "customerType",
        "userIpAddress",
        "sessionAttributesEncoded",
        "sessionAttributesKeyValuePairs",
    }
)
_CONSENT = frozenset({"adUserData", "adPersonalization"})
_ADJUSTMENT_REQUEST = frozenset(
    {"conversionAdjustments", "partialFailure", "validateOnly", "jobId"}
)
_ADJUSTMENT = frozenset(
    {
        "gclidDateTimePair",
        "orderId",
        "conversionAction",
        "adjustmentDateTime",
        "adjustmentType",
        "restatementValue",
        "userIdentifiers",
        "userAgent",
    }
)
_ADJUSTMENT_ERROR = "conversionAdjustmentUploadError"
_DEFAULT_VALUE_ONLY = "CANNOT_RESTATE_CONVERSION_ACTION_THAT_ALWAYS_USES_DEFAULT_CONVERSION_VALUE"
_RESTATEMENT = frozenset({"adjustedValue", "currencyCode"})
_GCLID_PAIR = frozenset({"gclid", "conversionDateTime"})

# Messages for the per-row errors, keyed by the enum name (wording ours, meaning the enum's).
_ROW_MESSAGES = {
    "UNPARSEABLE_GCLID": "The imported gclid could not be decoded.",
    "UNPARSEABLE_GBRAID": "The imported gbraid could not be parsed.",
    "UNPARSEABLE_WBRAID": "The imported wbraid could not be parsed.",
    "GBRAID_WBRAID_BOTH_SET": "Only one of gbraid and wbraid can be set.",
    "CONVERSION_PRECEDES_EVENT": "The conversion_date_time precedes the click.",
    "EXPIRED_EVENT": "The click occurred before this conversion action's click-through window.",
    "TOO_RECENT_EVENT": "The click occurred less than 6 hours ago; retry later.",
    "CLICK_NOT_FOUND": "The user identifiers could not be matched to a click.",
    "NO_CONVERSION_ACTION_FOUND": "The conversion action was not found in this account.",
    "INVALID_CONVERSION_ACTION_TYPE": "The conversion action is not set up for this upload.",
    "CLICK_CONVERSION_ALREADY_EXISTS": (
        "A conversion with the same click and conversion_date_time already exists."
    ),
    "DUPLICATE_CLICK_CONVERSION_IN_REQUEST": (
        "Several conversions in the request have the same click and conversion_date_time."
    ),
    "ORDER_ID_ALREADY_IN_USE": "The order ID was already recorded for this conversion action.",
    "DUPLICATE_ORDER_ID": "Several conversions in the request have the same order ID.",
    "INVALID_USER_IDENTIFIER": "User identifiers must be normalized, SHA-256 hashed (hex).",
    "UNSUPPORTED_USER_IDENTIFIER": "Only hashed_email and hashed_phone_number are supported.",
    "CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS": "The customer data terms are not accepted.",
    "CUSTOMER_NOT_ENABLED_ENHANCED_CONVERSIONS_FOR_LEADS": (
        "Enhanced conversions for leads is not turned on for this account."
    ),
    "CONVERSION_NOT_FOUND": "No conversion for this conversion action and identifier.",
    "CONVERSION_ALREADY_RETRACTED": "The conversion was already retracted.",
    "CONVERSION_EXPIRED": "Conversions older than 54 days cannot be adjusted.",
    "TOO_RECENT_CONVERSION": "Conversions less than 24 hours old cannot be adjusted.",
    "ADJUSTMENT_PRECEDES_CONVERSION": "The adjustment_date_time precedes the conversion.",
    "MORE_RECENT_RESTATEMENT_FOUND": "A more recent adjustment exists for this conversion.",
    "RESTATEMENT_ALREADY_EXISTS": "A restatement with this adjustment_date_time already exists.",
    "DUPLICATE_ADJUSTMENT_IN_REQUEST": (
        "Several adjustments in the request have the same conversion and adjustment_date_time."
    ),
    "GCLID_DATE_TIME_PAIR_AND_ORDER_ID_BOTH_SET": "Set gclid_date_time_pair or order_id, not both.",
    _DEFAULT_VALUE_ONLY: (
        "The conversion action always uses its default value, so it cannot be restated."
    ),
}


@dataclass
class ConversionAction:
    id: str
    name: str
    type: str = "UPLOAD_CLICKS"
    status: str = "ENABLED"
    click_through_lookback_window_days: int = 90
    always_use_default_value: bool = False


@dataclass
class UploadedConversion:
    """One accepted click conversion, as the account now holds it."""

    action_id: str
    conversion_date_time: str  # as sent
    at: datetime
    click_id: str | None  # the gclid / gbraid / wbraid sent
    click_kind: str  # "gclid" | "gbraid" | "wbraid" | "user_identifiers"
    click: Click | None  # the click it is attributed to (None: identifiers matched no click)
    hashed_emails: tuple[str, ...] = ()
    hashed_phone_numbers: tuple[str, ...] = ()
    value: float | None = None  # after any restatement
    currency: str | None = None
    order_id: str | None = None
    consent: dict[str, str] | None = None
    job_id: str = ""
    retracted: bool = False
    last_adjusted_at: datetime | None = None


@dataclass
class AcceptedAdjustment:
    action_id: str
    adjustment_type: str
    adjustment_date_time: str  # as sent
    at: datetime
    conversion: UploadedConversion
    value: float | None = None
    currency: str | None = None
    job_id: str = ""


@dataclass
class RejectedRow:
    method: str  # "uploadClickConversions" | "uploadConversionAdjustments"
    index: int
    error_code: dict[str, str]
    message: str
    row: dict[str, Any]

    @property
    def reason(self) -> str:
        """The enum name, e.g. ``EXPIRED_EVENT``."""
        return next(iter(self.error_code.values()))


class RowError(Exception):
    """One upload row fails; the rest of the request goes on (partial failure)."""

    def __init__(self, error_code: dict[str, str], message: str = "", field: str = "") -> None:
        name = next(iter(error_code.values()))
        super().__init__(message or _ROW_MESSAGES.get(name, name))
        self.error_code, self.message, self.field = error_code, str(self), field


class PayloadError(Exception):
    """The JSON body does not parse as the request message: the whole request is a 400."""


def _fields(message: Any, known: frozenset[str], path: str) -> dict[str, Any]:
    """Read one proto3-JSON message: lowerCamel keys (snake_case accepted, as Google's parser
    does); an unknown field fails the whole request like the real API."""
    where = f" at '{path}'" if path else ""
    if not isinstance(message, dict):
        raise PayloadError(f"Invalid JSON payload received. Expected an object{where}.")
    read: dict[str, Any] = {}
    for key, value in message.items():
        name = _camel(key)
        if name not in known:
            raise PayloadError(
                f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.'
            )
        read[name] = value
    return read


def _double(value: Any, path: str) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise PayloadError(
            f"Invalid value at '{path}' (TYPE_DOUBLE), {json.dumps(value)}"
        ) from None


def _path(error: dict[str, Any]) -> str:
    """``conversions[3].gclid`` from an error's location."""
    parts = []
    for element in error["location"]["fieldPathElements"]:
        index = f"[{element['index']}]" if "index" in element else ""
        parts.append(f"{element['fieldName']}{index}")
    return ".".join(parts)


def _date_time(value: Any, field_name: str) -> datetime:
    """``yyyy-mm-dd hh:mm:ss+|-hh:mm``, the only form the upload services take."""
    if not value:
        raise RowError(
            {"fieldError": "REQUIRED"}, "The required field was not present.", field_name
        )
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        raise RowError(
            {"dateError": "INVALID_STRING_DATE_TIME_SECONDS_WITH_OFFSET"},
            "The string date time's format should be yyyy-mm-dd hh:mm:ss+|-hh:mm.",
            field_name,
        )
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S%z")
    except ValueError:
        raise RowError(
            {"dateError": "INVALID_FIELD_VALUES_IN_DATE_TIME"},
            "The field values do not form a valid date time.",
            field_name,
        ) from None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _set(row: dict[str, Any], field: str, value: Any) -> None:
    *parents, leaf = [_camel(part) for part in field.split(".")]
    node = row
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _parse_where(where: str | None) -> DateFilter:
    found = DateFilter()
    if not where:
        return found
    for condition in _SPLIT_AND.split(where.strip()):
        condition = condition.strip()
        if match := _BETWEEN.match(condition):
            low, high = date.fromisoformat(match[1]), date.fromisoformat(match[2])
            if low > high:
                raise QueryError(
                    {"dateRangeError": "START_DATE_AFTER_END_DATE"},
                    "The start date was after the end date.",
                )
            found.low, found.high = low, high
        elif match := _COMPARE.match(condition):
            op, day = match[1], date.fromisoformat(match[2])
            if op in ("=", ">=", ">"):
                found.low = day + timedelta(days=1) if op == ">" else day
            if op in ("=", "<=", "<"):
                found.high = day - timedelta(days=1) if op == "<" else day
        elif match := _FIELD_IN.match(condition):
            values = {v.strip().strip("'") for v in match[3].split(",") if v.strip()}
            negated = match[2].upper() != "IN"
            found.conditions.append(Condition(match[1].lower(), values, negated))
        elif match := _FIELD_EQUALS.match(condition):
            found.conditions.append(Condition(match[1].lower(), {match[3]}, match[2] == "!="))
        else:
            raise QueryError(
                {"queryError": "UNEXPECTED_INPUT"},
                f"Error in query: unexpected input {condition!r}.",
            )
    return found


class Emulator(EmulatorServer):
    """Google Ads: one customer account's campaigns, daily metrics and clicks."""

    name = "google_ads"

    def __init__(
        self,
        customer_id: str = "1234567890",
        *,
        currency: str = "USD",
        access_token: str = "ya29.emulator-token",
        developer_token: str = "emulator-dev-token",
        refresh_token: str = "1//emulator-refresh",
        client_id: str = "emulator-client.apps.googleusercontent.com",
        client_secret: str = "emulator-secret",
        quota_retry_seconds: int = 5,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        super().__init__(rate_limit=rate_limit)
        self.customer_id = customer_id
        self.currency = currency
        self.access_token = access_token
        self.access_tokens = {access_token}  # grows with tokens issued by /token
        self.developer_token = developer_token
        self.approved_developer_tokens = {developer_token}
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.quota_retry_seconds = quota_retry_seconds
        self.campaigns: dict[str, str] = {}
        self.daily: dict[tuple[str, date], Daily] = {}
        self.clicks: list[Click] = []
        self._ids = itertools.count(1)
        # Offline conversions. Customer-level settings first (conversion_tracking_setting).
        self.accepted_customer_data_terms = True
        self.enhanced_conversions_for_leads_enabled = True
        self.conversion_actions: dict[str, ConversionAction] = {}
        self.lead_clicks: dict[str, str] = {}  # hashed email -> the gclid its lead came from
        self.conversions: list[UploadedConversion] = []  # accepted, each exactly once
        self.adjustments: list[AcceptedAdjustment] = []
        self.rejected: list[RejectedRow] = []
        self._by_order: dict[tuple[str, str], UploadedConversion] = {}
        self._by_click: dict[tuple[str, str, datetime], UploadedConversion] = {}
        self._job_ids = itertools.count(2**31)  # the API's own job ids are >= 2^31

    # -- seeding ---------------------------------------------------------------------------
    def add_campaign(self, id: str | int, name: str) -> None:
        self.campaigns[str(id)] = name

    def add_daily(
        self, campaign_id: str | int, day: date, cost: float, clicks: int, impressions: int
    ) -> None:
        """Set (or restate) one campaign-day; ``cost`` in account currency units."""
        self.daily[(str(campaign_id), day)] = Daily(round(cost * 1_000_000), clicks, impressions)

    def add_click(
        self,
        gclid: str,
        campaign_id: str | int,
        day: date,
        ad_group: str = "",
        keyword: str = "",
        *,
        kind: str = "gclid",
        at: datetime | None = None,
    ) -> None:
        """A known click: ``kind`` "gbraid"/"wbraid" makes ``gclid`` that URL parameter instead
        (such clicks are uploadable but, as on the real API, not listed by ``click_view``)."""
        with self._lock:
            self.clicks.append(Click(gclid, str(campaign_id), day, ad_group, keyword, kind, at))

    def add_conversion_action(
        self,
        id: str | int,
        name: str,
        type: str = "UPLOAD_CLICKS",
        status: str = "ENABLED",
        click_through_lookback_window_days: int = 90,
        *,
        always_use_default_value: bool = False,
    ) -> ConversionAction:
        """A conversion action (``customers/{cid}/conversionActions/{id}``); readable with GAQL
        ``FROM conversion_action``. ``status`` ENABLED | REMOVED | HIDDEN."""
        action = ConversionAction(
            str(id),
            name,
            type,
            status,
            click_through_lookback_window_days,
            always_use_default_value,
        )
        with self._lock:
            self.conversion_actions[action.id] = action
        return action

    def add_lead_identity(self, hashed_email: str, gclid: str) -> None:
        """Let enhanced conversions for leads match ``hashed_email`` to the click ``gclid``."""
        with self._lock:
            self.lead_clicks[hashed_email] = gclid

    def conversion_action_name(self, id: str | int) -> str:
        return f"customers/{self.customer_id}/conversionActions/{id}"

    def seed_sample(self) -> None:
        """Three campaigns, 30 days of spend before 2026-11-20, 30 gclid clicks and one upload
        conversion action per CRM milestone."""
        names = {"111": "Brand - Search", "222": "Generic - CRM Software", "333": "Competitor"}
        for cid, name in names.items():
            self.add_campaign(cid, name)
        for action_id, action in SAMPLE_CONVERSION_ACTIONS.items():
            self.add_conversion_action(action_id, action)
        for offset in range(1, 31):
            day = SAMPLE_TODAY - timedelta(days=offset)
            cid = list(names)[offset % 3]
            self.add_daily(
                cid, day, cost=40 + offset * 1.25, clicks=20 + offset, impressions=900 + 10 * offset
            )
            self.add_click(
                f"EAIaIQobChMI-sample-{offset:03d}",
                cid,
                day,
                ad_group="Core terms",
                keyword="crm software" if offset % 2 else "",
            )

    def adapter_settings(self, *, valid_token: bool = True) -> dict[str, Any]:
        token = self.access_token if valid_token else "ya29.invalid-token"
        return {
            "customer_id": self.customer_id,
            "developer_token": self.developer_token,
            "access_token": token,
            "endpoint": self.url,
        }

    # -- auth and errors -------------------------------------------------------------------
    def _failure(
        self,
        req: Request,
        http: int,
        status: str,
        message: str,
        error_code: dict[str, str],
        detail: str = "",
        extra: dict[str, Any] | None = None,
    ) -> Response:
        error: dict[str, Any] = {"errorCode": error_code, "message": detail or message}
        if extra:
            error.update(extra)
        body = {
            "error": {
                "code": http,
                "message": message,
                "status": status,
                "details": [
                    {"@type": FAILURE_TYPE, "errors": [error], "requestId": self._request_id()}
                ],
            }
        }
        # searchStream is a server-streaming method: over REST its body is a JSON array; the
        # unary upload methods answer a bare object.
        return Response(http, [body] if req.path.endswith(":searchStream") else body)

    def check_auth(self, req: Request) -> Response | None:
        if req.path == "/token":
            return None
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.access_tokens:
            return self._failure(
                req,
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
                {"authenticationError": "OAUTH_TOKEN_INVALID"},
                "OAuth token in the header is not valid.",
            )
        developer_token = req.headers.get("developer-token")
        if not developer_token:
            return self._failure(
                req,
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential.",
                {"authenticationError": "DEVELOPER_TOKEN_MISSING"},
                "The developer token is missing from the request.",
            )
        if developer_token not in self.approved_developer_tokens:
            return self._failure(
                req,
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                {"authorizationError": "DEVELOPER_TOKEN_NOT_APPROVED"},
                "The developer token is only approved for use with test accounts. To access "
                "non-test accounts, apply for Basic or Standard access.",
            )
        return None

    def rate_limited_response(self, req: Request) -> Response:
        return self._failure(
            req,
            429,
            "RESOURCE_EXHAUSTED",
            f"Too many requests. Retry in {self.quota_retry_seconds} seconds.",
            {"quotaError": "RESOURCE_EXHAUSTED"},
            f"Too many requests. Retry in {self.quota_retry_seconds} seconds.",
            {
                "details": {
                    "quotaErrorDetails": {
                        "rateScope": "DEVELOPER",
                        "rateName": "Number of operations for basic access",
                        "retryDelay": f"{self.quota_retry_seconds}s",
                    }
                }
            },
        )

    def server_error_response(self, req: Request, status: int) -> Response:
        name = {500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
        return self._failure(
            req,
            status,
            name,
            "Internal error encountered."
            if status == 500
            else "The service is currently unavailable.",
            {"internalError": "INTERNAL_ERROR" if status == 500 else "TRANSIENT_ERROR"},
        )

    def not_found_response(self, req: Request) -> Response:
        return Response(
            404,
            {
                "error": {
                    "code": 404,
                    "message": f"Method not found: {req.path}",
                    "status": "NOT_FOUND",
                }
            },
        )

    def _request_id(self) -> str:
        return hashlib.sha1(str(next(self._ids)).encode()).hexdigest()[:22]

    # -- routes ----------------------------------------------------------------------------
    @route("POST", r"/token")
    def token(self, req: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return Response(
                400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
            )
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return Response(
                401,
                {"error": "invalid_client", "error_description": "The OAuth client was not found."},
            )
        if form.get("refresh_token") != self.refresh_token:
            return Response(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                },
            )
        token = f"ya29.refreshed-{next(self._ids)}"
        self.access_tokens.add(token)
        return Response(
            200,
            {
                "access_token": token,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/adwords",
            },
        )

    def _customer_denied(self, req: Request) -> Response | None:
        cid = req.params["cid"]
        if not cid.isdigit():
            return self._failure(
                req,
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                {"authenticationError": "CLIENT_CUSTOMER_ID_INVALID"},
                "Client customer ID is not a number.",
            )
        if cid != self.customer_id:
            return self._failure(
                req,
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                {"authorizationError": "USER_PERMISSION_DENIED"},
                "User doesn't have permission to access customer. Note: If you're accessing a "
                "client customer, the manager's customer ID must be set in the "
                "'login-customer-id' header.",
            )
        return None

    @route("POST", rf"/{VERSION}/customers/(?P<cid>[^/]+)/googleAds:searchStream")
    def search_stream(self, req: Request) -> Response:
        denied = self._customer_denied(req)
        if denied:
            return denied
        try:
            fields, rows = self._run((req.json() or {}).get("query", ""))
        except QueryError as exc:
            return self._failure(
                req,
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                exc.error_code,
                exc.message,
            )
        mask = ",".join(".".join(_camel(p) for p in f.split(".")) for f in fields)
        batches = [
            {
                "results": rows[i : i + BATCH_SIZE],
                "fieldMask": mask,
                "requestId": self._request_id(),
            }
            for i in range(0, len(rows), BATCH_SIZE)
        ] or [{"fieldMask": mask, "requestId": self._request_id()}]
        batches[-1]["queryResourceConsumption"] = str(max(1, len(rows) // 100))
        return Response(200, batches)

    # -- offline conversion uploads --------------------------------------------------------
    @route("POST", rf"/{VERSION}/customers/(?P<cid>[^/:]+):uploadClickConversions")
    def upload_click_conversions(self, req: Request) -> Response:
        denied = self._customer_denied(req)
        if denied:
            return denied
        try:
            body = _fields(req.json() or {}, _UPLOAD_REQUEST, "")
            rows = self._rows(body, "conversions", _CLICK_CONVERSION)
        except (PayloadError, ValueError) as exc:
            return self._bad_payload(exc)
        problem = self._request_problem(req, body, rows, "conversions", "conversionUploadError")
        if problem:
            return problem
        debug = bool(body.get("debugEnabled"))
        with self._lock:
            outcomes: list[UploadedConversion | RowError] = []
            try:
                for i, row in enumerate(rows):
                    try:
                        outcomes.append(self._click_conversion(row, debug, f"conversions[{i}]"))
                    except RowError as exc:
                        outcomes.append(exc)
            except PayloadError as exc:
                return self._bad_payload(exc)
            self._reject_duplicates_in_request(outcomes)
            return self._commit(req, body, rows, outcomes, "conversions", self._accept_conversion)

    @route("POST", rf"/{VERSION}/customers/(?P<cid>[^/:]+):uploadConversionAdjustments")
    def upload_conversion_adjustments(self, req: Request) -> Response:
        denied = self._customer_denied(req)
        if denied:
            return denied
        try:
            body = _fields(req.json() or {}, _ADJUSTMENT_REQUEST, "")
            rows = self._rows(body, "conversionAdjustments", _ADJUSTMENT)
        except (PayloadError, ValueError) as exc:
            return self._bad_payload(exc)
        problem = self._request_problem(
            req, body, rows, "conversion_adjustments", _ADJUSTMENT_ERROR
        )
        if problem:
            return problem
        with self._lock:
            outcomes: list[AcceptedAdjustment | RowError] = []
            claimed: set[tuple[int, datetime]] = set()  # (conversion, adjustment time) in request
            try:
                for i, row in enumerate(rows):
                    try:
                        adjustment = self._adjustment(row, f"conversion_adjustments[{i}]")
                        key = (id(adjustment.conversion), adjustment.at)
                        if key in claimed:
                            raise RowError({_ADJUSTMENT_ERROR: "DUPLICATE_ADJUSTMENT_IN_REQUEST"})
                        claimed.add(key)
                        outcomes.append(adjustment)
                    except RowError as exc:
                        outcomes.append(exc)
            except PayloadError as exc:
                return self._bad_payload(exc)
            return self._commit(
                req, body, rows, outcomes, "conversion_adjustments", self._accept_adjustment
            )

    def _rows(self, body: dict[str, Any], name: str, known: frozenset[str]) -> list[dict[str, Any]]:
        rows = body.get(name) or []
        path = re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()  # proto field name, as in errors
        if not isinstance(rows, list):
            raise PayloadError(f"Invalid value at '{path}', expected a list.")
        return [_fields(row, known, f"{path}[{i}]") for i, row in enumerate(rows)]

    def _bad_payload(self, exc: Exception) -> Response:
        """Google's front end rejects a body that is not the request message (no Ads failure)."""
        message = str(exc) if isinstance(exc, PayloadError) else "Invalid JSON payload received."
        error = {
            "code": 400,
            "message": message,
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"description": message}],
                }
            ],
        }
        return Response(400, {"error": error})

    def _request_problem(
        self,
        req: Request,
        body: dict[str, Any],
        rows: list[dict[str, Any]],
        name: str,
        error_kind: str,
    ) -> Response | None:
        """Whole-request errors, checked before any row is looked at."""

        def fail(code: dict[str, str], detail: str, at: str = name) -> Response:
            where = {"location": {"fieldPathElements": [{"fieldName": at}]}}
            message = "Request contains an invalid argument."
            return self._failure(req, 400, "INVALID_ARGUMENT", message, code, detail, where)

        if body.get("partialFailure") is not True:
            return fail(
                {"partialFailureError": "PARTIAL_FAILURE_MODE_REQUIRED"},
                "The partial failure field was false in the request. This method requires this "
                "field be set to true.",
                "partial_failure",
            )
        if not rows:
            return fail({"fieldError": "REQUIRED"}, "The required field was not present.")
        if len(rows) > MAX_UPLOAD_ROWS:
            too_many = (
                "TOO_MANY_CONVERSIONS_IN_REQUEST"
                if error_kind == "conversionUploadError"
                else "TOO_MANY_ADJUSTMENTS_IN_REQUEST"
            )
            return fail(
                {error_kind: too_many},
                f"Upload at most {MAX_UPLOAD_ROWS} rows in a single request.",
            )
        if "jobId" in body:
            try:
                job_id = int(body["jobId"])
            except (TypeError, ValueError):
                job_id = -1
            if not 0 <= job_id < 2**31:
                return fail(
                    {error_kind: "INVALID_JOB_ID"},
                    "The job id must be a non-negative number less than 2^31.",
                    "job_id",
                )
        return None

    def _commit(
        self,
        req: Request,
        body: dict[str, Any],
        rows: list[dict[str, Any]],
        outcomes: Sequence[UploadedConversion | AcceptedAdjustment | RowError],
        name: str,
        accept: Callable[[Any, str], dict[str, Any]],
    ) -> Response:
        """Store the accepted rows (unless ``validateOnly``) and build the partial-failure answer.
        Called under the lock."""
        validate_only = bool(body.get("validateOnly"))
        job_id = str(int(body["jobId"])) if "jobId" in body else str(next(self._job_ids))
        method = req.path.rsplit(":", 1)[-1]
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, (row, outcome) in enumerate(zip(rows, outcomes, strict=True)):
            if isinstance(outcome, RowError):
                results.append({})
                errors.append(self._row_error(name, index, outcome))
                if not validate_only:
                    self.rejected.append(
                        RejectedRow(method, index, outcome.error_code, outcome.message, row)
                    )
            else:
                result = accept(outcome, job_id) if not validate_only else {}
                results.append(result)
        answer: dict[str, Any] = {}
        if errors:
            answer["partialFailureError"] = {
                "code": 3,
                "message": ", ".join(f"{e['message'].rstrip('.')}, at {_path(e)}" for e in errors),
                "details": [
                    {"@type": FAILURE_TYPE, "errors": errors, "requestId": self._request_id()}
                ],
            }
        if not validate_only:
            answer["results"] = results
        answer["jobId"] = job_id
        return Response(200, answer)

    @staticmethod
    def _row_error(name: str, index: int, error: RowError) -> dict[str, Any]:
        path: list[dict[str, Any]] = [{"fieldName": name, "index": index}]
        if error.field:
            path.extend({"fieldName": part} for part in error.field.split("."))
        return {
            "errorCode": error.error_code,
            "message": error.message,
            "location": {"fieldPathElements": path},
        }

    def _action(
        self, resource_name: Any, allowed_types: set[str], error_kind: str
    ) -> ConversionAction:
        """The conversion action a row names. Like the API, only the action id in the resource
        name counts; a removed or hidden action records nothing, so it counts as not found."""
        match = _ACTION_NAME.match(resource_name) if isinstance(resource_name, str) else None
        if not resource_name:
            raise RowError({"fieldError": "REQUIRED"}, "", "conversion_action")
        if not match:
            raise RowError(
                {"requestError": "RESOURCE_NAME_MALFORMED"},
                "Resource name provided is malformed.",
                "conversion_action",
            )
        action = self.conversion_actions.get(match[2])
        if action is None or action.status != "ENABLED":
            raise RowError({error_kind: "NO_CONVERSION_ACTION_FOUND"}, "", "conversion_action")
        if action.type not in allowed_types:
            raise RowError({error_kind: "INVALID_CONVERSION_ACTION_TYPE"}, "", "conversion_action")
        return action

    def _known_click(self, click_id: str, kind: str) -> Click:
        for click in self.clicks:
            if click.gclid == click_id and click.kind == kind:
                return click
        raise RowError({"conversionUploadError": f"UNPARSEABLE_{kind.upper()}"}, "", kind)

    def _user_identifiers(
        self, identifiers: Any, path: str
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(hashed emails, hashed phone numbers) of an enhanced-conversions-for-leads row."""
        if not isinstance(identifiers, list):
            raise PayloadError(f"Invalid value at '{path}.user_identifiers', expected a list.")
        if not self.accepted_customer_data_terms:
            raise RowError({"conversionUploadError": "CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS"})
        if not self.enhanced_conversions_for_leads_enabled:
            raise RowError(
                {"conversionUploadError": "CUSTOMER_NOT_ENABLED_ENHANCED_CONVERSIONS_FOR_LEADS"}
            )
        if len(identifiers) > MAX_USER_IDENTIFIERS:
            raise RowError(
                {"collectionSizeError": "TOO_MANY"},
                "Too many user identifiers (at most 5).",
                "user_identifiers",
            )
        emails: list[str] = []
        phones: list[str] = []
        for identifier in identifiers:
            ids = {
                _camel(k): v
                for k, v in (identifier if isinstance(identifier, dict) else {}).items()
                if _camel(k) != "userIdentifierSource"
            }
            if set(ids) - {"hashedEmail", "hashedPhoneNumber"} or len(ids) != 1:
                raise RowError(
                    {"conversionUploadError": "UNSUPPORTED_USER_IDENTIFIER"}, "", "user_identifiers"
                )
            [(kind, value)] = ids.items()
            if not isinstance(value, str) or not _SHA256_HEX.match(value):
                raise RowError(
                    {"conversionUploadError": "INVALID_USER_IDENTIFIER"}, "", "user_identifiers"
                )
            (emails if kind == "hashedEmail" else phones).append(value)
        return tuple(emails), tuple(phones)

    def _click_conversion(self, row: dict[str, Any], debug: bool, path: str) -> UploadedConversion:
        """Validate one ClickConversion as the API does; raises RowError for a failed row."""
        consent = _fields(row.get("consent") or {}, _CONSENT, f"{path}.consent")
        for key, status in consent.items():
            # proto3 JSON takes an enum by name or by number
            if isinstance(status, int) and 0 <= status < len(_CONSENT_STATUSES):
                consent[key] = _CONSENT_STATUSES[status]
            if consent[key] not in _CONSENT_STATUSES:
                raise PayloadError(
                    f"Invalid value at '{path}.consent' (ConsentStatus), {json.dumps(status)}"
                )
        value = _double(row.get("conversionValue"), f"{path}.conversion_value")
        action = self._action(
            row.get("conversionAction"), UPLOADABLE_TYPES, "conversionUploadError"
        )
        at = _date_time(row.get("conversionDateTime"), "conversion_date_time")
        if row.get("gbraid") and row.get("wbraid"):
            raise RowError({"conversionUploadError": "GBRAID_WBRAID_BOTH_SET"}, "", "gbraid")
        emails: tuple[str, ...] = ()
        phones: tuple[str, ...] = ()
        if row.get("userIdentifiers"):
            emails, phones = self._user_identifiers(row["userIdentifiers"], path)
        kind = next((k for k in ("gclid", "gbraid", "wbraid") if row.get(k)), "user_identifiers")
        click: Click | None
        if kind != "user_identifiers":
            click = self._known_click(str(row[kind]), kind)
        elif emails or phones:
            gclid = next((self.lead_clicks[e] for e in emails if e in self.lead_clicks), None)
            click = next((c for c in self.clicks if c.kind == "gclid" and c.gclid == gclid), None)
            if click is None and debug:
                # Without debugEnabled the API answers success for unmatched leads (they may
                # not come from an ad at all) and only the matched ones count.
                raise RowError({"conversionUploadError": "CLICK_NOT_FOUND"}, "", "user_identifiers")
        else:
            raise RowError(
                {"fieldError": "REQUIRED"},
                "Identify the click: gclid, gbraid, wbraid or user_identifiers.",
                "gclid",
            )
        if click is not None:
            self._check_click_time(click, at, action)
        conversion = UploadedConversion(
            action_id=action.id,
            conversion_date_time=row["conversionDateTime"],
            at=at,
            click_id=str(row[kind]) if kind != "user_identifiers" else None,
            click_kind=kind,
            click=click,
            hashed_emails=emails,
            hashed_phone_numbers=phones,
            value=value,
            currency=row.get("currencyCode"),
            order_id=str(row["orderId"]) if row.get("orderId") else None,
            consent=consent or None,
        )
        if conversion.order_id and (action.id, conversion.order_id) in self._by_order:
            raise RowError({"conversionUploadError": "ORDER_ID_ALREADY_IN_USE"}, "", "order_id")
        if self._click_key(conversion) in self._by_click:
            raise RowError({"conversionUploadError": "CLICK_CONVERSION_ALREADY_EXISTS"})
        return conversion

    def _check_click_time(self, click: Click, at: datetime, action: ConversionAction) -> None:
        if at < click.clicked_at:
            raise RowError(
                {"conversionUploadError": "CONVERSION_PRECEDES_EVENT"}, "", "conversion_date_time"
            )
        if at - click.clicked_at > timedelta(days=action.click_through_lookback_window_days):
            raise RowError({"conversionUploadError": "EXPIRED_EVENT"})
        if utcnow() - click.clicked_at < TOO_RECENT_CLICK:
            raise RowError({"conversionUploadError": "TOO_RECENT_EVENT"})

    @staticmethod
    def _click_key(conversion: UploadedConversion) -> tuple[str, str, datetime] | None:
        """The API's duplicate key for a click conversion: same click, action and time."""
        if conversion.click_id is None:
            return None
        return (conversion.action_id, conversion.click_id, conversion.at)

    def _reject_duplicates_in_request(self, outcomes: list[UploadedConversion | RowError]) -> None:
        """Rows of one request sharing an order ID, or a click and time, all fail."""
        orders = Counter(
            (o.action_id, o.order_id) for o in outcomes if isinstance(o, UploadedConversion)
        )
        clicks = Counter(self._click_key(o) for o in outcomes if isinstance(o, UploadedConversion))
        for i, outcome in enumerate(outcomes):
            if not isinstance(outcome, UploadedConversion):
                continue
            if outcome.order_id and orders[(outcome.action_id, outcome.order_id)] > 1:
                outcomes[i] = RowError(
                    {"conversionUploadError": "DUPLICATE_ORDER_ID"}, "", "order_id"
                )
            elif (key := self._click_key(outcome)) and clicks[key] > 1:
                outcomes[i] = RowError(
                    {"conversionUploadError": "DUPLICATE_CLICK_CONVERSION_IN_REQUEST"}
                )

    def _accept_conversion(self, conversion: UploadedConversion, job_id: str) -> dict[str, Any]:
        conversion.job_id = job_id
        self.conversions.append(conversion)
        if conversion.order_id:
            self._by_order[(conversion.action_id, conversion.order_id)] = conversion
        if key := self._click_key(conversion):
            self._by_click[key] = conversion
        result: dict[str, Any] = {
            "conversionAction": self.conversion_action_name(conversion.action_id),
            "conversionDateTime": conversion.conversion_date_time,
        }
        if conversion.click_id:
            result[conversion.click_kind] = conversion.click_id
        identifiers = [{"hashedEmail": e} for e in conversion.hashed_emails] + [
            {"hashedPhoneNumber": p} for p in conversion.hashed_phone_numbers
        ]
        if identifiers:
            result["userIdentifiers"] = identifiers
        return result

    def _adjustment(self, row: dict[str, Any], path: str) -> AcceptedAdjustment:
        """Validate one ConversionAdjustment; raises RowError for a failed row."""
        kind = _ADJUSTMENT_ERROR
        adjustment_type = row.get("adjustmentType")
        if adjustment_type not in _ADJUSTMENT_TYPES:
            raise PayloadError(
                f"Invalid value at '{path}.adjustment_type' (ConversionAdjustmentType), "
                f"{json.dumps(adjustment_type)}"
            )
        restated = _fields(
            row.get("restatementValue") or {}, _RESTATEMENT, f"{path}.restatement_value"
        )
        value = _double(restated.get("adjustedValue"), f"{path}.restatement_value.adjusted_value")
        allowed = {"WEBPAGE"} if adjustment_type == "ENHANCEMENT" else ADJUSTABLE_TYPES
        action = self._action(row.get("conversionAction"), allowed, kind)
        at = _date_time(row.get("adjustmentDateTime"), "adjustment_date_time")
        pair = _fields(
            row.get("gclidDateTimePair") or {}, _GCLID_PAIR, f"{path}.gclid_date_time_pair"
        )
        if pair and row.get("orderId"):
            raise RowError({kind: "GCLID_DATE_TIME_PAIR_AND_ORDER_ID_BOTH_SET"})
        conversion = self._conversion_to_adjust(action, row.get("orderId"), pair)
        if conversion.retracted:
            raise RowError({kind: "CONVERSION_ALREADY_RETRACTED"})
        if at < conversion.at:
            raise RowError({kind: "ADJUSTMENT_PRECEDES_CONVERSION"}, "", "adjustment_date_time")
        age = utcnow() - conversion.at
        if age > TOO_OLD_TO_ADJUST:
            raise RowError({kind: "CONVERSION_EXPIRED"})
        if age < TOO_RECENT_TO_ADJUST:
            raise RowError({kind: "TOO_RECENT_CONVERSION"})
        if conversion.last_adjusted_at is not None:
            if at == conversion.last_adjusted_at:
                raise RowError({kind: "RESTATEMENT_ALREADY_EXISTS"}, "", "adjustment_date_time")
            if at < conversion.last_adjusted_at:
                raise RowError({kind: "MORE_RECENT_RESTATEMENT_FOUND"}, "", "adjustment_date_time")
        if adjustment_type == "RESTATEMENT":
            if value is None:
                raise RowError({"fieldError": "REQUIRED"}, "", "restatement_value.adjusted_value")
            if action.always_use_default_value:
                raise RowError({kind: _DEFAULT_VALUE_ONLY})
        elif restated:
            raise RowError(
                {"fieldError": "VALUE_MUST_BE_UNSET"},
                "The field cannot be set.",
                "restatement_value",
            )
        return AcceptedAdjustment(
            action_id=action.id,
            adjustment_type=adjustment_type,
            adjustment_date_time=row["adjustmentDateTime"],
            at=at,
            conversion=conversion,
            value=value,
            currency=restated.get("currencyCode"),
        )

    def _conversion_to_adjust(
        self, action: ConversionAction, order_id: Any, pair: dict[str, Any]
    ) -> UploadedConversion:
        """A conversion uploaded with an order ID is found by that order ID only."""
        kind = _ADJUSTMENT_ERROR
        found: UploadedConversion | None = None
        if order_id:
            found = self._by_order.get((action.id, str(order_id)))
        elif pair:
            at = _date_time(
                pair.get("conversionDateTime"), "gclid_date_time_pair.conversion_date_time"
            )
            found = self._by_click.get((action.id, str(pair.get("gclid")), at))
            if found is not None and found.order_id:
                found = None
        if found is None:
            raise RowError({kind: "CONVERSION_NOT_FOUND"})
        return found

    def _accept_adjustment(self, adjustment: AcceptedAdjustment, job_id: str) -> dict[str, Any]:
        adjustment.job_id = job_id
        self.adjustments.append(adjustment)
        conversion = adjustment.conversion
        conversion.last_adjusted_at = adjustment.at
        if adjustment.adjustment_type == "RETRACTION":
            conversion.retracted = True
        elif adjustment.adjustment_type == "RESTATEMENT":
            conversion.value = adjustment.value
            conversion.currency = adjustment.currency or conversion.currency
        result: dict[str, Any] = {
            "conversionAction": self.conversion_action_name(adjustment.action_id),
            "adjustmentDateTime": adjustment.adjustment_date_time,
            "adjustmentType": adjustment.adjustment_type,
        }
        if conversion.order_id:
            result["orderId"] = conversion.order_id
        else:
            result["gclidDateTimePair"] = {
                "gclid": conversion.click_id,
                "conversionDateTime": conversion.conversion_date_time,
            }
        return result

    # -- GAQL ------------------------------------------------------------------------------
    def _run(self, query: str) -> tuple[list[str], list[dict[str, Any]]]:
        match = _QUERY.match(query)
        if not match:
            raise QueryError(
                {"queryError": "UNEXPECTED_INPUT"}, "Error in query: expected SELECT ... FROM ..."
            )
        resource = match["resource"].lower()
        if resource not in _RESOURCES:
            raise QueryError(
                {"queryError": "BAD_RESOURCE_TYPE_IN_FROM_CLAUSE"},
                f"Error in query: resource {resource!r} is not supported here.",
            )
        fields = [f.strip() for f in match["fields"].split(",")]
        for field in fields:
            if field not in _RESOURCES[resource]:
                raise QueryError(
                    {"queryError": "UNRECOGNIZED_FIELD"},
                    f"Unrecognized field in the query: '{field}'.",
                )
        where = _parse_where(match["where"])
        for condition in where.conditions:
            if resource != "conversion_action" or condition.field not in _RESOURCES[resource]:
                raise QueryError(
                    {"queryError": "UNEXPECTED_INPUT"},
                    f"Error in query: this emulator cannot filter on {condition.field!r}.",
                )
        if resource == "click_view":
            rows = self._click_rows(fields, where)
        elif resource == "conversion_action":
            rows = self._conversion_action_rows(fields, where)
        else:
            rows = self._campaign_rows(fields, where)
        if match["limit"]:
            rows = rows[: int(match["limit"])]
        return fields, rows

    def _base_values(self, campaign_id: str, day: date) -> dict[str, Any]:
        return {
            "customer.id": self.customer_id,
            "customer.resource_name": f"customers/{self.customer_id}",
            "customer.currency_code": self.currency,
            "campaign.id": campaign_id,
            "campaign.name": self.campaigns.get(campaign_id, ""),
            "campaign.resource_name": f"customers/{self.customer_id}/campaigns/{campaign_id}",
            "segments.date": day.isoformat(),
        }

    def _row(self, fields: list[str], values: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for field in fields:
            if values.get(field) not in (None, ""):
                _set(row, field, values[field])
        # Like the real API, each selected resource also carries its resource name.
        for resource in {f.split(".")[0] for f in fields} - {"segments", "metrics"}:
            name = values.get(f"{resource}.resource_name")
            if name:
                row.setdefault(_camel(resource), {})["resourceName"] = name
        return row

    def _campaign_rows(self, fields: list[str], where: DateFilter) -> list[dict[str, Any]]:
        by_day = "segments.date" in fields
        totals: dict[tuple[str, date | None], Daily] = defaultdict(lambda: Daily(0, 0, 0))
        for (campaign_id, day), daily in sorted(self.daily.items()):
            if day in where and (daily.cost_micros or daily.clicks or daily.impressions):
                total = totals[(campaign_id, day if by_day else None)]
                total.cost_micros += daily.cost_micros
                total.clicks += daily.clicks
                total.impressions += daily.impressions
        rows = []
        for (campaign_id, when), total in totals.items():
            values = self._base_values(campaign_id, when or SAMPLE_TODAY)
            values.update(
                {
                    "metrics.cost_micros": str(total.cost_micros),
                    "metrics.clicks": str(total.clicks),
                    "metrics.impressions": str(total.impressions),
                }
            )
            rows.append(self._row(fields, values))
        return rows

    def _conversion_action_rows(self, fields: list[str], where: DateFilter) -> list[dict[str, Any]]:
        rows = []
        for action in sorted(self.conversion_actions.values(), key=lambda a: int(a.id)):
            values: dict[str, Any] = {
                "customer.id": self.customer_id,
                "customer.resource_name": f"customers/{self.customer_id}",
                "conversion_action.id": action.id,
                "conversion_action.name": action.name,
                "conversion_action.status": action.status,
                "conversion_action.type": action.type,
                "conversion_action.resource_name": self.conversion_action_name(action.id),
                "conversion_action.click_through_lookback_window_days": str(
                    action.click_through_lookback_window_days
                ),
                "conversion_action.value_settings.always_use_default_value": (
                    action.always_use_default_value
                ),
            }
            if all(condition(values[condition.field]) for condition in where.conditions):
                rows.append(self._row(fields, values))
        return rows

    def _click_rows(self, fields: list[str], where: DateFilter) -> list[dict[str, Any]]:
        day = where.single_day()
        if day is None:
            raise QueryError(
                {"clickViewError": "EXPECTED_FILTER_ON_A_SINGLE_DAY"},
                "Missing filter on a single day. Queries including ClickView must have a filter "
                "limiting the results to one day.",
            )
        if day < utcnow().date() - timedelta(days=90):
            raise QueryError({"clickViewError": "DATE_TOO_OLD"}, "The requested date is too old.")
        rows = []
        for click in self.clicks:
            if click.day != day or click.kind != "gclid":
                continue
            group_id = str(int(hashlib.sha1(click.ad_group.encode()).hexdigest()[:8], 16))
            values = self._base_values(click.campaign_id, click.day)
            prefix = f"customers/{self.customer_id}"
            values.update(
                {
                    "click_view.gclid": click.gclid,
                    "click_view.keyword_info.text": click.keyword,
                    "click_view.resource_name": f"{prefix}/clickViews/{day}~{click.gclid}",
                    "ad_group.id": group_id,
                    "ad_group.name": click.ad_group,
                    "ad_group.resource_name": f"{prefix}/adGroups/{group_id}",
                }
            )
            rows.append(self._row(fields, values))
        return rows
