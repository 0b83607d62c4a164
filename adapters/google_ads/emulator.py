"""A wire-faithful Google Ads API (REST, v26) emulator: ``googleAds:searchStream`` and OAuth.

Serves ``POST /v26/customers/{cid}/googleAds:searchStream`` with a GAQL subset parser (the
``campaign`` and ``click_view`` queries the adapter sends: field list, ``FROM``, ``WHERE``
conditions on ``segments.date`` joined by ``AND``), answering a JSON array of batches of at
most 10,000 rows, int64 as strings, camelCase field names. Errors use the Google Ads error body
(``error.details[].@type = ...GoogleAdsFailure``): 401 UNAUTHENTICATED, 403 PERMISSION_DENIED
(``DEVELOPER_TOKEN_NOT_APPROVED``, ``USER_PERMISSION_DENIED``), 429 RESOURCE_EXHAUSTED with
``quotaErrorDetails.retryDelay``, 400 INVALID_ARGUMENT for query errors (a ``click_view`` query
without a single-day filter or older than 90 days). ``POST /token`` is a minimal OAuth token
endpoint for the refresh-token flow.

Reference: https://developers.google.com/google-ads/api/rest/reference/rest/v26/customers.googleAds/searchStream
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs

from adapters._emulator import EmulatorServer, Request, Response, route
from connector.kernel.timeutil import utcnow

VERSION = "v26"
BATCH_SIZE = 10_000
SAMPLE_TODAY = date(2026, 11, 20)
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
_RESOURCES = {"campaign": _CAMPAIGN_FIELDS, "click_view": _CLICK_FIELDS}

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
_SPLIT_AND = re.compile(r"\s+AND\s+(?!'\d{4}-\d{2}-\d{2}')", re.IGNORECASE)


class QueryError(Exception):
    def __init__(self, error_code: dict[str, str], message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


@dataclass
class DateFilter:
    low: date | None = None
    high: date | None = None

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
    gclid: str
    campaign_id: str
    day: date
    ad_group: str
    keyword: str


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

    # -- seeding ---------------------------------------------------------------------------
    def add_campaign(self, id: str | int, name: str) -> None:
        self.campaigns[str(id)] = name

    def add_daily(
        self, campaign_id: str | int, day: date, cost: float, clicks: int, impressions: int
    ) -> None:
        """Set (or restate) one campaign-day; ``cost`` in account currency units."""
        self.daily[(str(campaign_id), day)] = Daily(round(cost * 1_000_000), clicks, impressions)

    def add_click(
        self, gclid: str, campaign_id: str | int, day: date, ad_group: str = "", keyword: str = ""
    ) -> None:
        self.clicks.append(Click(gclid, str(campaign_id), day, ad_group, keyword))

    def seed_sample(self) -> None:
        """Three campaigns, 30 days of spend before 2026-11-20, 30 gclid clicks."""
        names = {"111": "Brand - Search", "222": "Generic - CRM Software", "333": "Competitor"}
        for cid, name in names.items():
            self.add_campaign(cid, name)
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
        # searchStream is a server-streaming method: over REST its body is a JSON array.
        return Response(http, [body])

    def check_auth(self, req: Request) -> Response | None:
        if req.path == "/token":
            return None
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.access_tokens:
            return self._failure(
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
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential.",
                {"authenticationError": "DEVELOPER_TOKEN_MISSING"},
                "The developer token is missing from the request.",
            )
        if developer_token not in self.approved_developer_tokens:
            return self._failure(
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

    @route("POST", rf"/{VERSION}/customers/(?P<cid>[^/]+)/googleAds:searchStream")
    def search_stream(self, req: Request) -> Response:
        cid = req.params["cid"]
        if not cid.isdigit():
            return self._failure(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                {"authenticationError": "CLIENT_CUSTOMER_ID_INVALID"},
                "Client customer ID is not a number.",
            )
        if cid != self.customer_id:
            return self._failure(
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                {"authorizationError": "USER_PERMISSION_DENIED"},
                "User doesn't have permission to access customer. Note: If you're accessing a "
                "client customer, the manager's customer ID must be set in the "
                "'login-customer-id' header.",
            )
        try:
            fields, rows = self._run((req.json() or {}).get("query", ""))
        except QueryError as exc:
            return self._failure(
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
        rows = (
            self._click_rows(fields, where)
            if resource == "click_view"
            else self._campaign_rows(fields, where)
        )
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
            if click.day != day:
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
