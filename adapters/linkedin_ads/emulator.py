"""A wire-faithful LinkedIn Marketing API (``/rest``) emulator: ad analytics, campaigns and the
Conversions API.

Serves, with Rest.li protocol 2.0 query encoding (``dateRange=(start:(year:2026,month:11,day:1))``,
``accounts=List(urn%3Ali%3AsponsoredAccount%3A123)``, parsed from the raw query string):

- ``GET /rest/adAnalytics?q=analytics&pivot=CAMPAIGN&timeGranularity=DAILY|ALL&dateRange=...
  &accounts=List(...)&fields=...``: one element per campaign and day, no pagination (as the
  real endpoint), only the requested fields;
- ``GET /rest/adAccounts/{id}/adCampaigns?q=search``: cursor pages (``pageSize`` default 100,
  max 1000; ``pageToken`` <- ``metadata.nextPageToken``);
- ``GET /rest/adAccounts/{id}``: the account (name, currency);
- ``GET /rest/conversions/{id}`` (optional ``account=urn...``) and
  ``GET /rest/conversions?q=account&account=urn%3Ali%3AsponsoredAccount%3A{id}``: conversion
  rules, seeded with :meth:`Emulator.add_conversion_rule`;
- ``POST /rest/conversionEvents``: one event (201, no body) or, with ``X-RestLi-Method:
  BATCH_CREATE``, ``{"elements": [...]}`` of at most 5,000 (200 ``{"elements": [{"status":
  201}, ...]}``). Elements: ``conversion`` (``urn:lla:llaPartnerConversion:{id}``),
  ``conversionHappenedAt`` (epoch ms, within the last 90 days), ``conversionValue``
  (``{"currencyCode", "amount"}``, amount a decimal string), ``user`` (``userIds`` of
  ``SHA256_EMAIL`` / ``LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID`` / ``ACXIOM_ID`` /
  ``ORACLE_MOAT_ID``, or ``userInfo`` with ``firstName`` and ``lastName``), ``eventId``. As the
  real API, a bad element fails the whole request: 422 ``{"message": "Index: 0, ERROR ::
  /conversionValue/amount :: field is required ...", "status": 422}`` for schema errors, 400
  ``"Incorrect conversions information provided. <reason>, indices [0] (0-indexed)"`` for an
  unknown rule, one not using CONVERSIONS_API, a time outside the window or no usable user id.
  Events are kept once per rule and ``eventId`` (``conversion_events``; ``events_received`` vs
  ``events_deduplicated``). Rules and events need the ``rw_conversions`` scope
  (``token_scopes``), else 403 ACCESS_DENIED.

Every request needs ``Authorization: Bearer``, ``LinkedIn-Version: YYYYMM`` and
``X-Restli-Protocol-Version: 2.0.0``. Errors use LinkedIn's body
``{"status":401,"serviceErrorCode":65600,"code":"INVALID_ACCESS_TOKEN","message":...}``;
throttling is a 429 with ``code: TOO_MANY_REQUESTS``.

Reference: https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/ads-reporting,
https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/protocol-version,
https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/conversions-api
and https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/conversions-api-schema
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from adapters._emulator import EmulatorServer, Request, Response, route
from connector.kernel.timeutil import from_epoch_ms, to_epoch_ms, utcnow

SAMPLE_TODAY = date(2026, 11, 20)
SAMPLE_CONVERSION_RULES = {
    "14488001": ("CRM lead created", "LEAD"),
    "14488002": ("CRM opportunity created", "QUALIFIED_LEAD"),
    "14488003": ("CRM closed won", "PURCHASE"),
}
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

# -- Conversions API -----------------------------------------------------------------------------
MAX_BATCH_EVENTS = 5000  # events per BATCH_CREATE
MAX_EVENT_AGE = timedelta(days=90)  # conversionHappenedAt must be within the last 90 days
FUTURE_TOLERANCE = timedelta(minutes=10)  # clock skew allowed for conversionHappenedAt
CONVERSION_URN = re.compile(r"^urn:lla:llaPartnerConversion:(\d+)$")
USER_ID_TYPES = {
    "SHA256_EMAIL",
    "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID",
    "ACXIOM_ID",
    "ORACLE_MOAT_ID",
}
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_REQUIRED = "field is required but not found and has no default value"


@dataclass
class ConversionRule:
    id: str
    name: str
    type: str = "LEAD"
    conversion_method: str = "CONVERSIONS_API"
    enabled: bool = True
    post_click_attribution_window_size: int = 30
    view_through_attribution_window_size: int = 7
    attribution_type: str = "LAST_TOUCH_BY_CAMPAIGN"
    campaigns: list[str] = field(default_factory=list)
    created: int = 0  # epoch ms


@dataclass
class ConversionEvent:
    """One accepted conversion event, as sent."""

    rule_id: str
    happened_at: datetime
    event_id: str | None
    user_ids: dict[str, str]  # idType -> idValue
    user_info: dict[str, Any]
    amount: Decimal | None
    currency: str | None
    raw: dict[str, Any]


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
        self.token_scopes = {"r_ads", "r_ads_reporting", "rw_conversions"}
        self.conversion_rules: dict[str, ConversionRule] = {}
        self.conversion_events: list[ConversionEvent] = []  # accepted, each counted once
        self.events_received = 0  # events answered 201, duplicates included
        self.events_deduplicated = 0  # of those, repeats of an accepted eventId for the rule
        self._event_keys: set[tuple[str, str]] = set()  # (rule id, eventId)

    # -- seeding ---------------------------------------------------------------------------
    def add_campaign(self, id: str | int, name: str) -> None:
        self.campaigns[str(id)] = name

    def add_daily(
        self, campaign_id: str | int, day: date, cost: float, clicks: int, impressions: int
    ) -> None:
        """Set (or restate) one campaign-day, cost in the account currency."""
        self.daily[(str(campaign_id), day)] = Daily(cost, clicks, impressions)

    def add_conversion_rule(
        self,
        id: str | int,
        name: str,
        type: str = "LEAD",
        *,
        conversion_method: str = "CONVERSIONS_API",
        enabled: bool = True,
        post_click_attribution_window_size: int = 30,
        view_through_attribution_window_size: int = 7,
        campaigns: list[str] | None = None,
    ) -> ConversionRule:
        """A conversion rule of the account (``urn:lla:llaPartnerConversion:{id}``). Only rules
        with ``conversion_method`` CONVERSIONS_API take streamed events."""
        rule = ConversionRule(
            str(id),
            name,
            type,
            conversion_method,
            enabled,
            post_click_attribution_window_size,
            view_through_attribution_window_size,
            campaigns=list(campaigns or []),
            created=to_epoch_ms(utcnow()),
        )
        with self._lock:
            self.conversion_rules[rule.id] = rule
        return rule

    def events_for(self, rule_id: str | int) -> list[ConversionEvent]:
        with self._lock:
            return [e for e in self.conversion_events if e.rule_id == str(rule_id)]

    def seed_sample(self) -> None:
        """Three campaigns, each with ten days of spend in the 30 days before 2026-11-20, and
        one Conversions API rule per CRM milestone."""
        for rule_id, (rule, kind) in SAMPLE_CONVERSION_RULES.items():
            self.add_conversion_rule(rule_id, rule, kind)
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

    # -- Conversions API -------------------------------------------------------------------
    def _scope_denied(self, req: Request, resource: str) -> Response | None:
        """Conversion rules and events need the ``rw_conversions`` scope on the token."""
        if "rw_conversions" in self.token_scopes:
            return None
        version = req.headers.get("linkedin-version", "NO_VERSION")
        return self._error(
            403, "ACCESS_DENIED", f"Not enough permissions to access: {resource}.{version}", 100
        )

    def _rule_json(self, rule: ConversionRule) -> dict[str, Any]:
        return {
            "id": int(rule.id),
            "name": rule.name,
            "account": f"urn:li:sponsoredAccount:{self.account_id}",
            "conversionMethod": rule.conversion_method,
            "type": rule.type,
            "enabled": rule.enabled,
            "attributionType": rule.attribution_type,
            "postClickAttributionWindowSize": rule.post_click_attribution_window_size,
            "viewThroughAttributionWindowSize": rule.view_through_attribution_window_size,
            "campaigns": rule.campaigns,
            "associatedCampaigns": [],
            "urlRules": [],
            "created": rule.created,
            "lastModified": rule.created,
        }

    def _wrong_account(self, req: Request) -> Response | None:
        account = unquote(self._params(req).get("account", ""))
        if account in ("", f"urn:li:sponsoredAccount:{self.account_id}"):
            return None
        return self._error(
            403, "ACCESS_DENIED", f"Not enough permissions to access account {account}", 100
        )

    @route("GET", r"/rest/conversions/(?P<id>\d+)")
    def conversion_rule(self, req: Request) -> Response:
        denied = self._scope_denied(req, "conversions.GET") or self._wrong_account(req)
        if denied:
            return denied
        rule = self.conversion_rules.get(req.params["id"])
        if rule is None:
            return self._error(
                404, "NOT_FOUND", f"Conversion rule {req.params['id']} does not exist", 404
            )
        return Response(200, self._rule_json(rule), {"x-restli-protocol-version": "2.0.0"})

    @route("GET", r"/rest/conversions")
    def conversion_rules_by_account(self, req: Request) -> Response:
        denied = self._scope_denied(req, "conversions.FINDER-account")
        if denied:
            return denied
        if req.arg("q") != "account" or not req.arg("account"):
            return self._error(400, "ILLEGAL_ARGUMENT", "Invalid finder: expected q=account")
        denied = self._wrong_account(req)
        if denied:
            return denied
        rules = [self._rule_json(r) for r in self.conversion_rules.values()]
        paging = {"start": 0, "count": len(rules), "links": [], "total": len(rules)}
        return Response(200, {"paging": paging, "elements": rules})

    @route("POST", r"/rest/conversionEvents")
    def conversion_events_create(self, req: Request) -> Response:
        batch = req.headers.get("x-restli-method", "").upper() == "BATCH_CREATE"
        method = "BATCH_CREATE" if batch else "CREATE"
        denied = self._scope_denied(req, f"conversionEvents.{method}")
        if denied:
            return denied
        try:
            body = json.loads(req.body or b"null")
        except ValueError:
            return self._message_error(400, "Invalid JSON in the request body")
        elements = body.get("elements") if batch and isinstance(body, dict) else [body]
        if not isinstance(elements, list) or not elements:
            return self._message_error(400, "A BATCH_CREATE body must carry a list of elements")
        if len(elements) > MAX_BATCH_EVENTS:
            return self._message_error(
                400, f"Batch size {len(elements)} exceeds the maximum of {MAX_BATCH_EVENTS}"
            )
        problem = self._schema_problem(elements, batch) or self._content_problem(elements)
        if problem:
            return problem
        with self._lock:
            for element in elements:
                self._record_event(element)
        headers = {"x-restli-protocol-version": "2.0.0"}
        if not batch:
            return Response(201, None, headers)
        return Response(200, {"elements": [{"status": 201} for _ in elements]}, headers)

    @staticmethod
    def _message_error(status: int, message: str) -> Response:
        """The error body the Conversions API answers for a rejected request."""
        return Response(
            status, {"message": message, "status": status}, {"x-restli-protocol-version": "2.0.0"}
        )

    def _schema_problem(self, elements: list[Any], batch: bool) -> Response | None:
        """422 for elements that do not fit the record schema (missing or mistyped fields), one
        ``Index: i, ERROR :: /path :: reason`` block per failing element."""
        blocks = []
        for index, element in enumerate(elements):
            errors = _schema_errors(element)
            if errors:
                lines = "".join(f"ERROR :: {path} :: {reason}\n" for path, reason in errors)
                blocks.append(f"Index: {index}, {lines}" if batch else lines)
        return self._message_error(422, "".join(blocks)) if blocks else None

    def _content_problem(self, elements: list[dict[str, Any]]) -> Response | None:
        """400 naming the failing element indices, as the API reports a bad rule or event."""
        failing: dict[str, list[int]] = {}
        now = utcnow()
        for index, element in enumerate(elements):
            match = CONVERSION_URN.match(str(element["conversion"]))
            rule = self.conversion_rules.get(match[1]) if match else None
            if rule is None:
                reason = "Conversion rule does not exist in the ad account"
            elif rule.conversion_method != "CONVERSIONS_API":
                reason = "Conversion's method should be CONVERSIONS_API"
            elif not _within_window(from_epoch_ms(element["conversionHappenedAt"]), now):
                reason = "conversionHappenedAt should be within the last 90 days"
            elif not _user_ids_valid(element["user"]):
                reason = (
                    "user needs a valid SHA256_EMAIL, LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID, "
                    "ACXIOM_ID or ORACLE_MOAT_ID, or userInfo with firstName and lastName"
                )
            else:
                continue
            failing.setdefault(reason, []).append(index)
        if not failing:
            return None
        message = "; ".join(
            f"{reason}, indices [{', '.join(map(str, indices))}] (0-indexed)"
            for reason, indices in failing.items()
        )
        return self._message_error(400, f"Incorrect conversions information provided. {message}")

    def _record_event(self, element: dict[str, Any]) -> None:
        """Keep an event once per rule and eventId (LinkedIn deduplicates on eventId). Called
        under the lock."""
        match = CONVERSION_URN.match(element["conversion"])
        assert match is not None  # checked by _content_problem
        rule_id, event_id = match[1], element.get("eventId")
        self.events_received += 1
        if event_id:
            if (rule_id, event_id) in self._event_keys:
                self.events_deduplicated += 1
                return
            self._event_keys.add((rule_id, event_id))
        value = element.get("conversionValue") or {}
        user = element["user"]
        self.conversion_events.append(
            ConversionEvent(
                rule_id=rule_id,
                happened_at=from_epoch_ms(element["conversionHappenedAt"]),
                event_id=event_id,
                user_ids={u["idType"]: u["idValue"] for u in user.get("userIds", [])},
                user_info=user.get("userInfo") or {},
                amount=Decimal(value["amount"]) if value else None,
                currency=value.get("currencyCode"),
                raw=element,
            )
        )

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


# -- Conversions API payload ---------------------------------------------------------------------
def _schema_errors(element: Any) -> list[tuple[str, str]]:
    """(path, reason) for each way ``element`` breaks the conversion event record schema."""
    if not isinstance(element, dict):
        return [("", "expected a record")]
    errors: list[tuple[str, str]] = []
    for name in ("conversion", "conversionHappenedAt", "user"):
        if element.get(name) is None:
            errors.append((f"/{name}", _REQUIRED))
    conversion = element.get("conversion")
    if conversion is not None and not isinstance(conversion, str):
        errors.append(("/conversion", f"{json.dumps(conversion)} is not a string"))
    happened = element.get("conversionHappenedAt")
    if happened is not None and (not isinstance(happened, int) or isinstance(happened, bool)):
        errors.append(("/conversionHappenedAt", f"{json.dumps(happened)} is not a long"))
    for name in ("conversionValue", "user"):
        if element.get(name) is not None and not isinstance(element[name], dict):
            errors.append((f"/{name}", f"{json.dumps(element[name])} is not a record"))
    value = element.get("conversionValue")
    if isinstance(value, dict):
        amount, currency = value.get("amount"), value.get("currencyCode")
        if amount is None:
            errors.append(("/conversionValue/amount", _REQUIRED))
        elif not isinstance(amount, str):
            errors.append(("/conversionValue/amount", f"{json.dumps(amount)} is not a string"))
        elif not _decimal(amount):
            errors.append(("/conversionValue/amount", f"{json.dumps(amount)} is not a decimal"))
        if currency is None:
            errors.append(("/conversionValue/currencyCode", _REQUIRED))
        elif not _CURRENCY.match(str(currency)):
            errors.append(("/conversionValue/currencyCode", f"{json.dumps(currency)} is invalid"))
    user = element.get("user")
    if isinstance(user, dict) and not isinstance(user.get("userIds") or [], list):
        errors.append(("/user/userIds", "is not an array"))
    elif isinstance(user, dict):
        for i, user_id in enumerate(user.get("userIds") or []):
            for key in ("idType", "idValue"):
                if not isinstance(user_id, dict) or user_id.get(key) is None:
                    errors.append((f"/user/userIds/{i}/{key}", _REQUIRED))
            id_type = user_id.get("idType") if isinstance(user_id, dict) else None
            if id_type is not None and id_type not in USER_ID_TYPES:
                errors.append(
                    (f"/user/userIds/{i}/idType", f"{json.dumps(id_type)} is not an enum symbol")
                )
        info = user.get("userInfo")
        if info is not None and not isinstance(info, dict):
            errors.append(("/user/userInfo", f"{json.dumps(info)} is not a record"))
        if isinstance(info, dict):
            for key in ("firstName", "lastName"):
                if not info.get(key):
                    errors.append((f"/user/userInfo/{key}", _REQUIRED))
    return errors


def _decimal(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def _within_window(happened_at: datetime, now: datetime) -> bool:
    return now - MAX_EVENT_AGE <= happened_at <= now + FUTURE_TOLERANCE


def _user_ids_valid(user: dict[str, Any]) -> bool:
    """At least one usable id (a SHA256_EMAIL must be a SHA-256 hex digest), or a name."""
    ids = user.get("userIds") or []
    for user_id in ids:
        if user_id["idType"] == "SHA256_EMAIL" and not _SHA256_HEX.match(str(user_id["idValue"])):
            return False
    return bool(ids) or bool(user.get("userInfo"))
