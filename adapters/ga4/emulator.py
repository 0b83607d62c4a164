"""A wire-faithful local GA4 Data API (v1beta) for tests and the demo.

Serves, over the REST transport of ``google-analytics-data``:

- ``POST /v1beta/properties/{id}:runReport``: sessions aggregated by the requested dimensions,
  with date ranges, dimension filters, ordering, limit/offset paging, ``metadata`` and
  ``propertyQuota`` (token buckets per day and per hour, 429 ``RESOURCE_EXHAUSTED`` when spent).
- ``GET /v1beta/properties/{id}/metadata``: the dimensions and metrics this property accepts,
  including its registered custom dimensions.

Errors use Google's JSON error envelope (``{"error": {"code", "message", "status"}}``): 400
``INVALID_ARGUMENT``, 401 ``UNAUTHENTICATED``, 403 ``PERMISSION_DENIED``, 429
``RESOURCE_EXHAUSTED``, 5xx ``INTERNAL`` / ``UNAVAILABLE``. With the ``$alt=json;enum-encoding=int``
query the client sends, enums in responses are integers.

Reference: https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from json.encoder import encode_basestring_ascii
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from adapters._emulator import EmulatorServer, Request, Response, route

MAX_DIMENSIONS = 9
MAX_METRICS = 10
MAX_DATE_RANGES = 4
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 250_000
SAMPLE_DAY = datetime(2026, 11, 20, tzinfo=UTC)
SCHEMA_URL = "https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema"
AUTH_HELP = "https://developers.google.com/identity/sign-in/web/devconsole-project"
PROPERTY_HELP = "https://developers.google.com/analytics/devguides/reporting/data/v1/property-id"

# apiName -> (uiName, category, description)
STANDARD_DIMENSIONS: dict[str, tuple[str, str, str]] = {
    "date": ("Date", "Time", "The date of the event, formatted as YYYYMMDD."),
    "dateHour": ("Date + hour (YYYYMMDDHH)", "Time", "The combined values of date and hour."),
    "dateHourMinute": (
        "Date hour and minute",
        "Time",
        "The combined values of date, hour, and minute formatted as YYYYMMDDHHMM.",
    ),
    "sessionSource": ("Session source", "Traffic source", "The source that initiated a session."),
    "sessionMedium": ("Session medium", "Traffic source", "The medium that initiated a session."),
    "sessionCampaignName": (
        "Session campaign",
        "Traffic source",
        "The marketing campaign name for a session.",
    ),
    "sessionDefaultChannelGroup": (
        "Session default channel group",
        "Traffic source",
        "The session's default channel group, based primarily on source and medium.",
    ),
    "landingPage": (
        "Landing page",
        "Page / screen",
        "The page path associated with the first pageview in a session.",
    ),
}

# apiName -> (uiName, type, category, deprecated names); types are proto MetricType values
TYPE_INTEGER, TYPE_FLOAT, TYPE_CURRENCY = 1, 2, 9
METRIC_TYPE_NAMES = {
    TYPE_INTEGER: "TYPE_INTEGER",
    TYPE_FLOAT: "TYPE_FLOAT",
    TYPE_CURRENCY: "TYPE_CURRENCY",
}
STANDARD_METRICS: dict[str, tuple[str, int, str, tuple[str, ...]]] = {
    "sessions": ("Sessions", TYPE_INTEGER, "Session", ()),
    "keyEvents": ("Key events", TYPE_FLOAT, "Event", ("conversions",)),
    "totalRevenue": ("Total revenue", TYPE_CURRENCY, "Revenue", ()),
}
# metric name (incl. deprecated) -> index into a session's (sessions, keyEvents, revenue)
METRIC_SLOT = {"sessions": 0, "keyEvents": 1, "conversions": 1, "totalRevenue": 2}

MATCH_TYPES = {
    "MATCH_TYPE_UNSPECIFIED": 0,
    "EXACT": 1,
    "BEGINS_WITH": 2,
    "ENDS_WITH": 3,
    "CONTAINS": 4,
    "FULL_REGEXP": 5,
    "PARTIAL_REGEXP": 6,
}
ORDER_TYPES = {
    "ORDER_TYPE_UNSPECIFIED": 0,
    "ALPHANUMERIC": 1,
    "CASE_INSENSITIVE_ALPHANUMERIC": 2,
    "NUMERIC": 3,
}
AGGREGATIONS = {
    "METRIC_AGGREGATION_UNSPECIFIED": 0,
    "TOTAL": 1,
    "MINIMUM": 5,
    "MAXIMUM": 6,
    "COUNT": 4,
}
AGGREGATION_ROWS = {
    1: ("totals", "RESERVED_TOTAL"),
    6: ("maximums", "RESERVED_MAX"),
    5: ("minimums", "RESERVED_MIN"),
}

SEARCH_ENGINES = {"google", "bing", "duckduckgo", "yahoo", "baidu", "ecosia", "yandex"}
SOCIAL_SITES = {"facebook", "instagram", "linkedin", "twitter", "x", "t.co", "reddit", "youtube"}
Filter = Callable[[dict[str, str]], bool]
RowKey = Callable[[tuple[tuple[str, ...], list[float]]], Any]
_CELL_SEPARATOR = '}, {"value": '


def _values_json(values: Iterable[str]) -> str:
    """``[{"value": ...}, ...]`` built with the C string encoder (the hot path of big reports)."""
    inner = _CELL_SEPARATOR.join(map(encode_basestring_ascii, values))
    return '[{"value": ' + inner + "}]" if inner else "[]"


class InvalidArgument(Exception):
    """A request GA4 would reject with 400 INVALID_ARGUMENT."""


@dataclass(slots=True)
class _Session:
    dims: dict[str, str]
    metrics: tuple[int, float, float]  # sessions, key events, revenue


def _error(code: int, status: str, message: str, **extra: Any) -> Response:
    return Response(code, {"error": {"code": code, "message": message, "status": status, **extra}})


def _enum(value: Any, names: Mapping[str, int]) -> int:
    """Proto3 JSON enums arrive as ints (enum-encoding=int) or as their names."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise InvalidArgument(f"Invalid value at enum field: {value!r}")


def _int64(body: Mapping[str, Any], key: str, default: int) -> int:
    value = body.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"Invalid value at '{key}' (TYPE_INT64), \"{value}\"") from None


def _format_metric(value: float, metric_type: int) -> str:
    if metric_type == TYPE_INTEGER or float(value).is_integer():
        return str(int(value))
    return repr(round(value, 10))


def default_channel_group(source: str, medium: str, campaign: str) -> str:
    """GA4's default channel group, reduced to the rules the sample traffic needs."""
    s, m = source.lower(), medium.lower()
    if s == "(direct)" and m in {"(none)", "(not set)"}:
        return "Direct"
    if re.search(r"cross-network", campaign, re.I):
        return "Cross-network"
    paid = re.match(r"^(.*cp.*|ppc|retargeting|paid.*)$", m) is not None
    if s in SEARCH_ENGINES and paid:
        return "Paid Search"
    if s in SOCIAL_SITES and paid:
        return "Paid Social"
    if m == "organic" or (s in SEARCH_ENGINES and m in {"", "(none)"}):
        return "Organic Search"
    if s in SOCIAL_SITES or m in {"social", "social-network", "social-media", "sm"}:
        return "Organic Social"
    if m in {"email", "e-mail", "e_mail", "e mail"} or s in {"email", "newsletter"}:
        return "Email"
    if m == "affiliate":
        return "Affiliates"
    if m in {"display", "banner", "expandable", "interstitial", "cpm"}:
        return "Display"
    if m == "referral":
        return "Referral"
    if paid:
        return "Paid Other"
    return "Unassigned"


class Emulator(EmulatorServer):
    """GA4 Data API for one property; seed it with :meth:`add_session` / :meth:`add_sessions`."""

    name = "ga4"

    def __init__(
        self,
        property_id: str = "123456",
        access_token: str = "ga-demo-token",
        time_zone: str = "America/New_York",
        custom_dimensions: Iterable[str] = ("customUser:ga_client_id", "customUser:user_id"),
        rate_limit: tuple[int, float] | None = None,
        tokens_per_day: int = 200_000,
        currency_code: str = "USD",
    ) -> None:
        super().__init__(rate_limit=rate_limit)
        self.property_id = property_id
        self.access_token = access_token
        self.time_zone = time_zone
        self.tz = ZoneInfo(time_zone)
        self.currency_code = currency_code
        self.custom_dimensions = tuple(custom_dimensions)
        self.tokens_per_day = tokens_per_day
        # GA4 standard properties: 200k/day, 40k/hour per property, 14k/hour per project.
        self.tokens_per_hour = max(1, tokens_per_day // 5)
        self.tokens_per_project_per_hour = max(1, tokens_per_day * 7 // 100)
        self.tokens_used_today = 0
        self._hourly: deque[tuple[float, int]] = deque()
        self._sessions: list[_Session] = []

    # -- seeding ---------------------------------------------------------------------------
    def add_session(
        self,
        client_id: str,
        started_at: datetime,
        source: str,
        medium: str,
        campaign: str = "(not set)",
        landing_page: str = "/",
        user_id: str | None = None,
        key_events: int = 0,
        revenue: float = 0.0,
    ) -> None:
        """Record one session; ``started_at`` must be timezone-aware."""
        if started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        local = started_at.astimezone(self.tz)
        stamp = local.strftime("%Y%m%d%H%M")
        identities = {
            "ga_client_id": client_id or "(not set)",
            "client_id": client_id or "(not set)",
            "user_id": user_id or "(not set)",
        }
        dims = {
            "date": stamp[:8],
            "dateHour": stamp[:10],
            "dateHourMinute": stamp,
            "sessionSource": source,
            "sessionMedium": medium,
            "sessionCampaignName": campaign,
            "sessionDefaultChannelGroup": default_channel_group(source, medium, campaign),
            "landingPage": landing_page,
        }
        for name in self.custom_dimensions:
            dims[name] = identities.get(name.partition(":")[2], "(not set)")
        session = _Session(dims, (1, float(key_events), float(revenue)))
        with self._lock:
            self._sessions.append(session)

    def add_sessions(self, sessions: Iterable[tuple[Any, ...] | Mapping[str, Any]]) -> None:
        """Bulk :meth:`add_session`: tuples in its positional order, or dicts of its keywords."""
        for item in sessions:
            if isinstance(item, Mapping):
                self.add_session(**item)
            else:
                self.add_session(*item)

    def seed_sample(self) -> None:
        """30 identified sessions (+2 without a client id) in the 30 days up to 2026-11-20."""
        channels = [
            ("google", "organic", "(not set)", "/blog/attribution"),
            ("google", "cpc", "brand_search", "/pricing"),
            ("(direct)", "(none)", "(not set)", "/"),
            ("newsletter", "email", "nov_digest", "/webinar"),
            ("linkedin", "cpc", "abm_q4", "/demo"),
            ("facebook", "paid_social", "retarget_nov", "/trial"),
            ("bing", "organic", "(not set)", "/docs"),
            ("partner.example.com", "referral", "(not set)", "/integrations"),
        ]
        for i in range(30):
            source, medium, campaign, page = channels[i % len(channels)]
            started = SAMPLE_DAY - timedelta(days=i, hours=(i * 5) % 24, minutes=(i * 7) % 60)
            self.add_session(
                client_id=f"{1000000000 + i * 7919}.{1700000000 + i * 86400}",
                started_at=started,
                source=source,
                medium=medium,
                campaign=campaign,
                landing_page=page,
                user_id=f"user-{i:03d}" if i % 3 == 0 else None,
                key_events=1 if i % 4 == 0 else 0,
                revenue=49.0 if i % 10 == 0 else 0.0,
            )
        for i in range(2):
            self.add_session("", SAMPLE_DAY - timedelta(days=2 + i), "(direct)", "(none)")

    def adapter_settings(self, *, valid_token: bool = True) -> dict[str, Any]:
        token = self.access_token if valid_token else "ya29.invalid-token"
        return {"property_id": self.property_id, "access_token": token, "api_endpoint": self.url}

    # -- hooks -----------------------------------------------------------------------------
    def check_auth(self, req: Request) -> Response | None:
        header = req.headers.get("authorization", "")
        if not header:
            return self._unauthenticated(
                "Request is missing required authentication credential. Expected OAuth 2 access "
                f"token, login cookie or other valid authentication credential. See {AUTH_HELP}.",
                "CREDENTIALS_MISSING",
            )
        if header != f"Bearer {self.access_token}":
            return self._unauthenticated(
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                f"login cookie or other valid authentication credential. See {AUTH_HELP}.",
                "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            )
        return None

    def _unauthenticated(self, message: str, reason: str) -> Response:
        response = _error(
            401,
            "UNAUTHENTICATED",
            message,
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reason,
                    "domain": "googleapis.com",
                    "metadata": {"service": "analyticsdata.googleapis.com"},
                }
            ],
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
        return response

    def rate_limited_response(self, req: Request) -> Response:
        return _error(429, "RESOURCE_EXHAUSTED", "Exhausted concurrent requests quota.")

    def server_error_response(self, req: Request, status: int) -> Response:
        if status == 503:
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        if status == 502:  # Google's front end answers 502 with an HTML page
            html = "<!DOCTYPE html><html lang=en><title>Error 502 (Server Error)!!1</title></html>"
            return Response(502, html, content_type="text/html; charset=UTF-8")
        return _error(status, "INTERNAL", "Internal error encountered.")

    def not_found_response(self, req: Request) -> Response:
        html = (
            f"<!DOCTYPE html><html lang=en><title>Error 404 (Not Found)!!1</title>"
            f"<p>The requested URL <code>{req.path}</code> was not found on this server.</html>"
        )
        return Response(404, html, content_type="text/html; charset=UTF-8")

    # -- routes ----------------------------------------------------------------------------
    @route("POST", r"/v1beta/properties/(?P<pid>[^/:]+):runReport")
    def run_report(self, req: Request) -> Response:
        if req.params["pid"] != self.property_id:
            return self._permission_denied()
        try:
            body = req.json() or {}
            report, rows = self._report(body, self._int_enums(req))
        except (InvalidArgument, ValueError) as exc:
            return _error(400, "INVALID_ARGUMENT", str(exc))
        cost = 1 + len(rows) // 1000
        exhausted = self._charge(cost)
        if exhausted:
            return _error(429, "RESOURCE_EXHAUSTED", exhausted)
        if body.get("returnPropertyQuota"):
            report["propertyQuota"] = self._quota(cost)
        text = json.dumps(report)
        if rows:  # rows are encoded apart: building 20k rows as dicts is the slow part
            text = text[:-1] + ', "rows": [' + ", ".join(rows) + "]}"
        return Response(200, text.encode())

    @route("GET", r"/v1beta/properties/(?P<pid>[^/:]+)/metadata")
    def get_metadata(self, req: Request) -> Response:
        if req.params["pid"] != self.property_id:
            return self._permission_denied()
        ints = self._int_enums(req)
        dimensions: list[dict[str, Any]] = [
            {"apiName": name, "uiName": ui, "description": text, "category": category}
            for name, (ui, category, text) in STANDARD_DIMENSIONS.items()
        ]
        for name in self.custom_dimensions:
            scope = "An user" if name.startswith("customUser:") else "An event"
            dimensions.append(
                {
                    "apiName": name,
                    "uiName": name.partition(":")[2],
                    "description": f"{scope} scoped Custom Dimension for your Analytics property.",
                    "customDefinition": True,
                    "category": "Custom",
                }
            )
        metrics: list[dict[str, Any]] = []
        for name, (ui, metric_type, category, deprecated) in STANDARD_METRICS.items():
            metric: dict[str, Any] = {
                "apiName": name,
                "uiName": ui,
                "description": f"{ui} of the property.",
                "type": metric_type if ints else METRIC_TYPE_NAMES[metric_type],
                "category": category,
            }
            if deprecated:
                metric["deprecatedApiNames"] = list(deprecated)
            metrics.append(metric)
        name = f"properties/{self.property_id}/metadata"
        return Response(200, {"name": name, "dimensions": dimensions, "metrics": metrics})

    def _permission_denied(self) -> Response:
        return _error(
            403,
            "PERMISSION_DENIED",
            "User does not have sufficient permissions for "
            f"this property. To learn more about Property ID, see {PROPERTY_HELP}.",
        )

    @staticmethod
    def _int_enums(req: Request) -> bool:
        return "enum-encoding=int" in (req.arg("$alt") or "")

    # -- quota -----------------------------------------------------------------------------
    def _charge(self, cost: int) -> str | None:
        """Spend ``cost`` tokens, or say which bucket is exhausted (then nothing is spent)."""
        with self._lock:
            hour = self._tokens_this_hour()
            if self.tokens_used_today + cost > self.tokens_per_day:
                return "Exhausted property tokens per day for a property."
            if hour + cost > self.tokens_per_hour:
                return "Exhausted property tokens per hour for a property."
            if hour + cost > self.tokens_per_project_per_hour:
                return "Exhausted property tokens per project per hour for a property."
            self.tokens_used_today += cost
            self._hourly.append((time.monotonic(), cost))
            return None

    def _tokens_this_hour(self) -> int:
        now = time.monotonic()
        while self._hourly and now - self._hourly[0][0] >= 3600:
            self._hourly.popleft()
        return sum(cost for _, cost in self._hourly)

    def _quota(self, cost: int) -> dict[str, Any]:
        with self._lock:
            hour = self._tokens_this_hour()
            return {
                "tokensPerDay": {
                    "consumed": cost,
                    "remaining": self.tokens_per_day - self.tokens_used_today,
                },
                "tokensPerHour": {"consumed": cost, "remaining": self.tokens_per_hour - hour},
                "concurrentRequests": {"remaining": 10},
                "serverErrorsPerProjectPerHour": {"remaining": 10},
                "potentiallyThresholdedRequestsPerHour": {"remaining": 120},
                "tokensPerProjectPerHour": {
                    "consumed": cost,
                    "remaining": self.tokens_per_project_per_hour - hour,
                },
            }

    # -- the report ------------------------------------------------------------------------
    def _valid_dimension(self, name: str) -> str:
        if name not in STANDARD_DIMENSIONS and name not in self.custom_dimensions:
            raise InvalidArgument(
                f"Field {name} is not a valid dimension. For a list of valid dimensions and "
                f"metrics, see {SCHEMA_URL} "
            )
        return name

    def _valid_metric(self, name: str) -> str:
        if name not in METRIC_SLOT:
            raise InvalidArgument(
                f"Field {name} is not a valid metric. For a list of valid dimensions and "
                f"metrics, see {SCHEMA_URL} "
            )
        return name

    def _report(self, body: Mapping[str, Any], int_enums: bool) -> tuple[dict[str, Any], list[str]]:
        """The response without its rows, and the page's rows already encoded as JSON."""
        dims = [self._valid_dimension(d.get("name", "")) for d in body.get("dimensions", [])]
        mets = [self._valid_metric(m.get("name", "")) for m in body.get("metrics", [])]
        if len(dims) > MAX_DIMENSIONS:
            raise InvalidArgument(
                f"Requests are limited to {MAX_DIMENSIONS} dimensions within a "
                f"request; this request has {len(dims)} dimensions."
            )
        if len(mets) > MAX_METRICS:
            raise InvalidArgument(
                f"Requests are limited to {MAX_METRICS} metrics within a "
                f"request; this request has {len(mets)} metrics."
            )
        if body.get("metricFilter"):
            raise InvalidArgument("metricFilter is not supported by this emulator.")
        ranges = self._date_ranges(body.get("dateRanges", []))
        keep = self._compile(body["dimensionFilter"]) if body.get("dimensionFilter") else None
        groups = self._aggregate(dims, ranges, keep)
        headers = dims + (["dateRange"] if len(ranges) > 1 else [])
        rows = self._order(list(groups.items()), headers, mets, body.get("orderBys", []))
        offset = _int64(body, "offset", 0)
        limit = _int64(body, "limit", DEFAULT_LIMIT)
        if offset < 0 or limit < 0:
            raise InvalidArgument("limit and offset must be non-negative.")
        page = rows[offset : offset + min(limit or DEFAULT_LIMIT, MAX_LIMIT)]
        types = [STANDARD_METRICS["keyEvents" if m == "conversions" else m][1] for m in mets]
        slots = [(METRIC_SLOT[m], t) for m, t in zip(mets, types, strict=True)]

        def encode(key: tuple[str, ...], acc: list[float]) -> str:
            metric_values = (_format_metric(acc[slot], t) for slot, t in slots)
            return (
                '{"dimensionValues": '
                + _values_json(key)
                + ', "metricValues": '
                + _values_json(metric_values)
                + "}"
            )

        report: dict[str, Any] = {
            "dimensionHeaders": [{"name": d} for d in headers],
            "metricHeaders": [
                {"name": m, "type": t if int_enums else METRIC_TYPE_NAMES[t]}
                for m, t in zip(mets, types, strict=True)
            ],
            "rowCount": len(rows),
            "metadata": {"currencyCode": self.currency_code, "timeZone": self.time_zone},
            "kind": "analyticsData#runReport",
        }
        for field, row in self._aggregates(body, rows, headers, mets, encode):
            report[field] = [json.loads(row)]
        return report, [encode(key, acc) for key, acc in page]

    def _aggregate(
        self, dims: list[str], ranges: list[tuple[str, str, str]], keep: Filter | None
    ) -> dict[tuple[str, ...], list[float]]:
        """Sum the metrics of the sessions in ``ranges`` by their values of ``dims``."""
        key_of = _key_function(dims)
        groups: dict[tuple[str, ...], list[float]] = {}
        with self._lock:
            sessions = list(self._sessions)
        for start, end, range_name in ranges:
            suffix = (range_name,) if len(ranges) > 1 else ()
            for session in sessions:
                values = session.dims
                if not start <= values["date"] <= end or (keep is not None and not keep(values)):
                    continue
                key = key_of(values) + suffix
                acc = groups.get(key)
                if acc is None:
                    groups[key] = list(session.metrics)
                else:
                    acc[0] += session.metrics[0]
                    acc[1] += session.metrics[1]
                    acc[2] += session.metrics[2]
        return groups

    def _aggregates(
        self,
        body: Mapping[str, Any],
        rows: list[tuple[tuple[str, ...], list[float]]],
        headers: list[str],
        mets: list[str],
        encode: Callable[[tuple[str, ...], list[float]], str],
    ) -> Iterator[tuple[str, str]]:
        """``metricAggregations``: totals / maximums / minimums rows over all matching rows."""
        for raw in body.get("metricAggregations", []):
            kind = _enum(raw, AGGREGATIONS)
            if kind not in AGGREGATION_ROWS or not rows:
                continue
            field, label = AGGREGATION_ROWS[kind]
            columns = list(zip(*(acc for _, acc in rows), strict=True))
            if kind == 1:
                values = [sum(column) for column in columns]
            else:
                values = [(min if kind == 5 else max)(column) for column in columns]
            yield field, encode(tuple(label for _ in headers), values)

    def _date_ranges(self, raw: list[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
        if not raw:
            raise InvalidArgument("Must specify at least one date range.")
        if len(raw) > MAX_DATE_RANGES:
            raise InvalidArgument(f"Requests are limited to {MAX_DATE_RANGES} date ranges.")
        today = datetime.now(self.tz).date()
        ranges = []
        for index, item in enumerate(raw):
            start = self._resolve_date(item.get("startDate", ""), today)
            end = self._resolve_date(item.get("endDate", ""), today)
            if start > end:
                raise InvalidArgument(
                    f"Invalid date range: startDate {start} can not be after endDate {end}."
                )
            name = item.get("name") or f"date_range_{index}"
            ranges.append((start.strftime("%Y%m%d"), end.strftime("%Y%m%d"), name))
        return ranges

    @staticmethod
    def _resolve_date(text: str, today: date) -> date:
        if text == "today":
            return today
        if text == "yesterday":
            return today - timedelta(days=1)
        match = re.fullmatch(r"(\d+)daysAgo", text)
        if match:
            return today - timedelta(days=int(match.group(1)))
        problem = InvalidArgument(
            f"Invalid date: '{text}'. Use YYYY-MM-DD, NdaysAgo, yesterday, or today."
        )
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise problem
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise problem from None

    def _compile(self, expr: Mapping[str, Any]) -> Filter:
        if "andGroup" in expr:
            parts = [self._compile(e) for e in expr["andGroup"].get("expressions", [])]
            return lambda dims: all(part(dims) for part in parts)
        if "orGroup" in expr:
            parts = [self._compile(e) for e in expr["orGroup"].get("expressions", [])]
            return lambda dims: any(part(dims) for part in parts)
        if "notExpression" in expr:
            inner = self._compile(expr["notExpression"])
            return lambda dims: not inner(dims)
        if "filter" in expr:
            return self._compile_filter(expr["filter"])
        raise InvalidArgument(
            "FilterExpression must set one of andGroup, orGroup, notExpression or filter."
        )

    def _compile_filter(self, spec: Mapping[str, Any]) -> Filter:
        field = self._valid_dimension(spec.get("fieldName", ""))
        if "inListFilter" in spec:
            in_list = spec["inListFilter"]
            if in_list.get("caseSensitive"):
                values = set(in_list.get("values", []))
                return lambda dims: dims[field] in values
            folded = {v.lower() for v in in_list.get("values", [])}
            return lambda dims: dims[field].lower() in folded
        if "emptyFilter" in spec:
            return lambda dims: dims[field] in {"", "(not set)"}
        if "stringFilter" not in spec:
            raise InvalidArgument(f"Unsupported filter on dimension {field}.")
        string = spec["stringFilter"]
        match_type = _enum(string.get("matchType", 0), MATCH_TYPES) or 1
        sensitive = bool(string.get("caseSensitive"))
        value = string.get("value", "")
        if match_type in (5, 6):
            try:
                pattern = re.compile(value, 0 if sensitive else re.IGNORECASE)
            except re.error as exc:
                raise InvalidArgument(f"Invalid regular expression {value!r}: {exc}") from None
            find = pattern.fullmatch if match_type == 5 else pattern.search
            return lambda dims: find(dims[field]) is not None
        wanted = value if sensitive else value.lower()
        test: Callable[[str], bool] = {
            1: lambda text: text == wanted,
            2: lambda text: text.startswith(wanted),
            3: lambda text: text.endswith(wanted),
            4: lambda text: wanted in text,
        }[match_type]
        if sensitive:
            return lambda dims: test(dims[field])
        return lambda dims: test(dims[field].lower())

    @staticmethod
    def _order(
        rows: list[tuple[tuple[str, ...], list[float]]],
        headers: list[str],
        mets: list[str],
        order_bys: list[Mapping[str, Any]],
    ) -> list[tuple[tuple[str, ...], list[float]]]:
        if not order_bys:  # GA's default: first metric descending (ties by dimension values)
            rows.sort(key=itemgetter(0))
            if mets:
                rows.sort(key=lambda row: row[1][METRIC_SLOT[mets[0]]], reverse=True)
            return rows
        # Consecutive order-bys in the same direction make one sort with a composite key.
        runs: list[tuple[bool, list[RowKey]]] = []
        for order in order_bys:
            desc = bool(order.get("desc"))
            key = _order_key(order, headers, mets)
            if runs and runs[-1][0] == desc:
                runs[-1][1].append(key)
            else:
                runs.append((desc, [key]))
        for desc, keys in reversed(runs):
            if len(keys) == 1:
                rows.sort(key=keys[0], reverse=desc)
            else:
                rows.sort(key=lambda row, ks=keys: [k(row) for k in ks], reverse=desc)  # type: ignore[misc]
        return rows


def _order_key(order: Mapping[str, Any], headers: list[str], mets: list[str]) -> RowKey:
    if "metric" in order:
        name = order["metric"].get("metricName", "")
        if name not in mets:
            raise InvalidArgument(f"OrderBy metric {name} is not in the request metrics.")
        slot = METRIC_SLOT[name]
        return lambda row: row[1][slot]
    if "dimension" in order:
        name = order["dimension"].get("dimensionName", "")
        if name not in headers:
            raise InvalidArgument(f"OrderBy dimension {name} is not in the request dimensions.")
        kind = _enum(order["dimension"].get("orderType", 0), ORDER_TYPES)
        return _dimension_sort_key(headers.index(name), kind)
    raise InvalidArgument("OrderBy must set metric or dimension.")


def _key_function(dims: list[str]) -> Callable[[dict[str, str]], tuple[str, ...]]:
    if not dims:
        return lambda values: ()
    if len(dims) == 1:
        name = dims[0]
        return lambda values: (values[name],)
    return itemgetter(*dims)


def _dimension_sort_key(index: int, kind: int) -> Callable[[tuple[tuple[str, ...], Any]], Any]:
    if kind == 2:
        return lambda row: row[0][index].lower()
    if kind == 3:

        def numeric(row: tuple[tuple[str, ...], Any]) -> tuple[int, float]:
            try:
                return (1, float(row[0][index]))
            except ValueError:
                return (0, 0.0)

        return numeric
    return lambda row: row[0][index]
