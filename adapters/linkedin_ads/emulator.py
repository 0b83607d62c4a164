"""A wire-faithful LinkedIn Marketing API (``/rest``) emulator: ad analytics and campaigns.

Serves, with Rest.li protocol 2.0 query encoding (``dateRange=(start:(year:2026,month:11,day:1))``,
``accounts=List(urn%3Ali%3AsponsoredAccount%3A123)``, parsed from the raw query string):

- ``GET /rest/adAnalytics?q=analytics&pivot=CAMPAIGN&timeGranularity=DAILY|ALL&dateRange=...
  &accounts=List(...)&fields=...``: one element per campaign and day, no pagination (as the
  real endpoint), only the requested fields;
- ``GET /rest/adAccounts/{id}/adCampaigns?q=search``: cursor pages (``pageSize`` default 100,
  max 1000; ``pageToken`` <- ``metadata.nextPageToken``);
- ``GET /rest/adAccounts/{id}``: the account (name, currency).

Every request needs ``Authorization: Bearer``, ``LinkedIn-Version: YYYYMM`` and
``X-Restli-Protocol-Version: 2.0.0``. Errors use LinkedIn's body
``{"status":401,"serviceErrorCode":65600,"code":"INVALID_ACCESS_TOKEN","message":...}``;
throttling is a 429 with ``code: TOO_MANY_REQUESTS``.

Reference: https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/ads-reporting
and https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/protocol-version
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import unquote

from adapters._emulator import EmulatorServer, Request, Response, route

SAMPLE_TODAY = date(2026, 11, 20)
ANALYTICS_FIELDS = {
    "costInLocalCurrency",
    "costInUsd",
    "clicks",
    "impressions",
    "dateRange",
    "pivotValues",
    "landingPageClicks",
    "externalWebsiteConversions",
}
MAX_FIELDS = 20
RestLi = str | dict[str, "RestLi"] | list["RestLi"]


class RestLiError(ValueError):
    pass


def parse_restli(text: str) -> RestLi:
    """Parse one Rest.li 2.0 URL value: ``(k:v,...)``, ``List(v,...)`` or an encoded string."""
    value, end = _value(text, 0)
    if end != len(text):
        raise RestLiError(f"unexpected {text[end]!r} at {end}")
    return value


def _value(text: str, pos: int) -> tuple[RestLi, int]:
    if text.startswith("List(", pos):
        items: list[RestLi] = []
        pos += 5
        while pos < len(text) and text[pos] != ")":
            item, pos = _value(text, pos)
            items.append(item)
            pos = _separator(text, pos)
        return items, _expect(text, pos, ")")
    if text.startswith("(", pos):
        record: dict[str, RestLi] = {}
        pos += 1
        while pos < len(text) and text[pos] != ")":
            key, pos = _primitive(text, pos)
            pos = _expect(text, pos, ":")
            record[key], pos = _value(text, pos)
            pos = _separator(text, pos)
        return record, _expect(text, pos, ")")
    return _primitive(text, pos)


def _primitive(text: str, pos: int) -> tuple[str, int]:
    match = re.compile(r"[^(),:]*").match(text, pos)
    assert match is not None
    return unquote(match.group()), match.end()


def _separator(text: str, pos: int) -> int:
    """Step over the ``,`` between items; anything but ``,`` or the closing ``)`` is an error."""
    if pos < len(text) and text[pos] == ",":
        return pos + 1
    if pos < len(text) and text[pos] == ")":
        return pos
    found = text[pos] if pos < len(text) else "end of value"
    raise RestLiError(f"expected ',' or ')' at {pos}, found {found!r}")


def _expect(text: str, pos: int, char: str) -> int:
    if pos >= len(text) or text[pos] != char:
        found = text[pos] if pos < len(text) else "end of value"
        raise RestLiError(f"expected {char!r} at {pos}, found {found!r}")
    return pos + 1


def _restli_date(value: RestLi) -> date:
    if not isinstance(value, dict):
        raise RestLiError("a date must be (year:..,month:..,day:..)")
    try:
        return date(int(str(value["year"])), int(str(value["month"])), int(str(value["day"])))
    except (KeyError, ValueError) as exc:
        raise RestLiError(f"invalid date {value}") from exc


def _date_json(day: date) -> dict[str, int]:
    return {"year": day.year, "month": day.month, "day": day.day}


@dataclass
class Daily:
    cost: float
    clicks: int
    impressions: int


class Emulator(EmulatorServer):
    """LinkedIn Ads: one sponsored account, its campaigns and their daily analytics."""

    name = "linkedin_ads"

    def __init__(
        self,
        account_id: str = "508123456",
        *,
        currency: str = "USD",
        access_token: str = "AQV-emulator-token",
        active_versions: set[str] | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        super().__init__(rate_limit=rate_limit)
        self.account_id = account_id
        self.account_name = "Acme Corp Ads"
        self.currency = currency
        self.access_token = access_token
        self.active_versions = active_versions  # None: any well-formed YYYYMM[.RR]
        self.campaigns: dict[str, str] = {}
        self.daily: dict[tuple[str, date], Daily] = {}

    # -- seeding ---------------------------------------------------------------------------
    def add_campaign(self, id: str | int, name: str) -> None:
        self.campaigns[str(id)] = name

    def add_daily(
        self, campaign_id: str | int, day: date, cost: float, clicks: int, impressions: int
    ) -> None:
        """Set (or restate) one campaign-day, cost in the account currency."""
        self.daily[(str(campaign_id), day)] = Daily(cost, clicks, impressions)

    def seed_sample(self) -> None:
        """Three campaigns, each with ten days of spend in the 30 days before 2026-11-20."""
        names = {
            "612345001": "ABM - Enterprise IT",
            "612345002": "Lead Gen - Guide",
            "612345003": "Brand Awareness",
        }
        for cid, name in names.items():
            self.add_campaign(cid, name)
        for offset in range(1, 31):
            cid = list(names)[offset % 3]
            self.add_daily(
                cid,
                SAMPLE_TODAY - timedelta(days=offset),
                cost=60 + offset * 2.5,
                clicks=8 + offset // 2,
                impressions=1500 + 40 * offset,
            )

    def adapter_settings(self, *, valid_token: bool = True) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "access_token": self.access_token if valid_token else "AQV-invalid-token",
            "endpoint": self.url,
        }

    # -- errors ----------------------------------------------------------------------------
    @staticmethod
    def _error(status: int, code: str, message: str, service_code: int | None = None) -> Response:
        body: dict[str, Any] = {"status": status, "code": code, "message": message}
        if service_code is not None:
            body["serviceErrorCode"] = service_code
        return Response(status, body, {"x-restli-protocol-version": "2.0.0"})

    def check_auth(self, req: Request) -> Response | None:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._error(401, "EMPTY_ACCESS_TOKEN", "Empty oauth2 access token", 65604)
        if auth[7:] != self.access_token:
            return self._error(401, "INVALID_ACCESS_TOKEN", "Invalid access token", 65600)
        version = req.headers.get("linkedin-version")
        if not version:
            return self._error(
                400,
                "VERSION_MISSING",
                "A version must be present. Please specify a version by adding the "
                "LinkedIn-Version header.",
            )
        if not re.fullmatch(r"\d{6}(\.\d{2})?", version) or (
            self.active_versions is not None and version not in self.active_versions
        ):
            return self._error(
                426, "NONEXISTENT_VERSION", f"Requested version {version} is not active"
            )
        if req.headers.get("x-restli-protocol-version") != "2.0.0":
            return self._error(
                400,
                "ILLEGAL_ARGUMENT",
                "Invalid query parameters passed to request",
            )
        return None

    def rate_limited_response(self, req: Request) -> Response:
        return self._error(
            429,
            "TOO_MANY_REQUESTS",
            "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
        )

    def server_error_response(self, req: Request, status: int) -> Response:
        code = "INTERNAL_SERVER_ERROR" if status == 500 else "SERVICE_UNAVAILABLE"
        return self._error(
            status, code, "Internal Server Error" if status == 500 else "Service Unavailable"
        )

    def not_found_response(self, req: Request) -> Response:
        return self._error(404, "RESOURCE_NOT_EXISTS", f"Resource {req.path} does not exist")

    @staticmethod
    def _params(req: Request) -> dict[str, str]:
        """Raw (still percent-encoded) query parameters of the request."""
        pairs = (part.partition("=") for part in req.raw_query.split("&") if part)
        return {key: value for key, _, value in pairs}

    # -- routes ----------------------------------------------------------------------------
    @route("GET", r"/rest/adAccounts/(?P<id>\d+)")
    def account(self, req: Request) -> Response:
        if req.params["id"] != self.account_id:
            return self._error(
                403,
                "ACCESS_DENIED",
                f"Not enough permissions to access: adAccounts.GET.{req.params['id']}",
                100,
            )
        return Response(
            200,
            {
                "id": int(self.account_id),
                "name": self.account_name,
                "currency": self.currency,
                "status": "ACTIVE",
                "type": "BUSINESS",
                "test": False,
                "reference": "urn:li:organization:2414183",
                "servingStatuses": ["RUNNABLE"],
            },
        )

    @route("GET", r"/rest/adAccounts/(?P<id>\d+)/adCampaigns")
    def campaigns_search(self, req: Request) -> Response:
        if req.params["id"] != self.account_id:
            return self._error(
                403,
                "ACCESS_DENIED",
                "Not enough permissions to access: adCampaigns.FINDER-search",
                100,
            )
        if req.arg("q") != "search":
            return self._error(400, "ILLEGAL_ARGUMENT", "Invalid finder: expected q=search")
        size = int(req.arg("pageSize") or 100)
        if not 1 <= size <= 1000:
            return self._error(400, "ILLEGAL_ARGUMENT", "pageSize must be between 1 and 1000")
        token = req.arg("pageToken")
        start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        ids = sorted(self.campaigns)
        elements = [
            {
                "id": int(cid),
                "name": self.campaigns[cid],
                "status": "ACTIVE",
                "account": f"urn:li:sponsoredAccount:{self.account_id}",
                "campaignGroup": "urn:li:sponsoredCampaignGroup:700001",
                "type": "SPONSORED_UPDATES",
                "costType": "CPM",
                "format": "SINGLE_IMAGE",
                "locale": {"country": "US", "language": "en"},
            }
            for cid in ids[start : start + size]
        ]
        body: dict[str, Any] = {"elements": elements, "metadata": {}}
        if start + size < len(ids):
            body["metadata"]["nextPageToken"] = base64.urlsafe_b64encode(
                str(start + size).encode()
            ).decode()
        return Response(200, body)

    @route("GET", r"/rest/adAnalytics")
    def analytics(self, req: Request) -> Response:
        params = self._params(req)
        try:
            if params.get("q") != "analytics":
                raise RestLiError("q: this emulator serves the analytics finder")
            if params.get("pivot") != "CAMPAIGN":
                raise RestLiError("pivot: this emulator serves pivot=CAMPAIGN")
            granularity = params.get("timeGranularity")
            if granularity not in ("DAILY", "ALL"):
                raise RestLiError("timeGranularity: expected DAILY or ALL")
            date_range = parse_restli(params.get("dateRange", ""))
            if not isinstance(date_range, dict) or "start" not in date_range:
                raise RestLiError("dateRange: expected (start:(year:..,month:..,day:..),end:(...))")
            start = _restli_date(date_range["start"])
            end = (
                _restli_date(date_range["end"])
                if "end" in date_range
                else SAMPLE_TODAY + timedelta(days=3650)
            )
            accounts = parse_restli(params.get("accounts", ""))
            if not isinstance(accounts, list) or not accounts:
                raise RestLiError("accounts: expected List(urn%3Ali%3AsponsoredAccount%3A...)")
            fields = [
                f for f in unquote(params.get("fields", "impressions,clicks")).split(",") if f
            ]
            unknown = [f for f in fields if f not in ANALYTICS_FIELDS]
            if unknown or len(fields) > MAX_FIELDS:
                raise RestLiError(f"fields: unknown or too many fields {unknown}")
        except (RestLiError, KeyError) as exc:
            return self._error(400, "ILLEGAL_ARGUMENT", f"Invalid param. {exc}", 100)
        if f"urn:li:sponsoredAccount:{self.account_id}" not in accounts:
            return Response(200, {"paging": {"start": 0, "count": 10, "links": []}, "elements": []})
        elements = self._elements(start, end, granularity == "DAILY", fields)
        return Response(
            200, {"paging": {"start": 0, "count": 10, "links": []}, "elements": elements}
        )

    def _elements(
        self, start: date, end: date, daily: bool, fields: list[str]
    ) -> list[dict[str, Any]]:
        totals: dict[tuple[str, date | None], Daily] = {}
        for (campaign_id, day), row in sorted(self.daily.items()):
            if start <= day <= end:
                total = totals.setdefault((campaign_id, day if daily else None), Daily(0.0, 0, 0))
                total.cost += row.cost
                total.clicks += row.clicks
                total.impressions += row.impressions
        elements = []
        for (campaign_id, when), total in totals.items():
            first, last = (when, when) if when else (start, end)
            values: dict[str, Any] = {
                "pivotValues": [f"urn:li:sponsoredCampaign:{campaign_id}"],
                "dateRange": {"start": _date_json(first), "end": _date_json(last)},
                "costInLocalCurrency": repr(round(total.cost, 6)),
                "costInUsd": repr(round(total.cost, 6)),
                "clicks": total.clicks,
                "impressions": total.impressions,
                "landingPageClicks": total.clicks,
                "externalWebsiteConversions": 0,
            }
            elements.append({f: values[f] for f in fields})
        return elements
