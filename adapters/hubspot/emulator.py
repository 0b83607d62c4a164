"""A wire-faithful local HubSpot CRM API for tests and the demo.

Serves, as ``hubspot-api-client`` calls them:

- ``GET /crm/v3/objects/{contacts|deals}``: list; ``limit`` <= 100, ``after``, ``properties``.
- ``POST /crm/v3/objects/{type}/search``: ``filterGroups`` (<= 5 groups, <= 10 filters each,
  <= 25 in all), the CRM search operators, one sort, ``limit`` <= 200, and the search API's
  10,000-result window (``after + limit > 10000`` is a 400).
- ``POST /crm/v3/objects/{type}/batch/read`` and ``/batch/update``: <= 100 inputs; a partial
  failure is a 207 with per-id ``errors`` (``OBJECT_NOT_FOUND``, ``VALIDATION_ERROR``).
- ``GET|POST /crm/v3/properties/{type}`` and ``/crm/v3/properties/{type}/groups``: definitions,
  creation, 409 on duplicates.
- ``POST /crm/v4/associations/{from}/{to}/batch/read``: <= 1000 inputs, per-input paging.

Errors use HubSpot's envelope ``{"status": "error", "message", "correlationId", "category"}``.
Limits are per token, so they apply after authentication: the rolling ten-second limit
(``rate_limit``; ``X-HubSpot-RateLimit-*`` headers on every non-search response), the search
limit (``search_rate_limit``; search responses carry no rate-limit headers) and an optional
daily limit, each answered by a 429 with HubSpot's ``RATE_LIMIT`` body.

References: https://developers.hubspot.com/docs/api/crm/understanding-the-crm,
https://developers.hubspot.com/docs/api/crm/search, https://developers.hubspot.com/docs/api/usage-details
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from adapters._emulator import EmulatorServer, Request, Response, route
from connector.kernel.timeutil import from_epoch_ms, iso_z, parse_datetime, to_epoch_ms, utcnow

SAMPLE_DAY = datetime(2026, 11, 20, tzinfo=UTC)
MAX_BATCH = 100
MAX_ASSOCIATION_INPUTS = 1000
MAX_LIST_LIMIT = 100
MAX_SEARCH_LIMIT = 200
SEARCH_WINDOW = 10_000
MAX_FILTER_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 10, 25
MAX_STRING_LENGTH = 65_536
DEFAULT_DAILY_LIMIT = 250_000

MODIFIED = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}
SINGULAR = {"contacts": "CONTACT", "deals": "DEAL"}
# What HubSpot returns when no ``properties`` are asked for, and what it always adds.
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "lastname", "lastmodifieddate"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "pipeline"),
}
ALWAYS_RETURNED = {
    "contacts": ("hs_object_id", "createdate", "lastmodifieddate"),
    "deals": ("hs_object_id", "createdate", "hs_lastmodifieddate"),
}
SEARCHABLE = {"contacts": ("email", "firstname", "lastname", "company"), "deals": ("dealname",)}
ASSOCIATION_TYPE_IDS = {("deals", "contacts"): 3, ("contacts", "deals"): 4}

PROPERTY_TYPES = ("string", "number", "date", "datetime", "enumeration", "bool")
FIELD_TYPES = (
    "textarea", "text", "date", "file", "number", "select", "radio", "checkbox",
    "booleancheckbox", "calculation_equation",
)  # fmt: skip
PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]*")
LIFECYCLE_STAGES = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
    "customer", "evangelist", "other",
)  # fmt: skip
ANALYTICS_SOURCES = (
    "ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS",
    "OTHER_CAMPAIGNS", "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL",
)  # fmt: skip
DEAL_STAGES = (
    "appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
    "contractsent", "closedwon", "closedlost",
)  # fmt: skip
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF", "JPY")

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
RATE_LIMIT_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "SECONDLY": "You have reached your secondly limit.",
    "DAILY": "You have reached your daily limit.",
}
OPERATORS = (
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
    "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
)  # fmt: skip


@dataclass
class CrmObject:
    id: str
    properties: dict[str, str | None]
    created_at: datetime
    updated_at: datetime
    archived: bool = False


class _Rejected(Exception):
    """Raised inside a handler to answer with an error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _error(status: int, message: str, category: str, **extra: Any) -> Response:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return Response(status, body)


def _reject(message: str, status: int = 400, category: str = "VALIDATION_ERROR") -> NoReturn:
    raise _Rejected(_error(status, message, category))


def _batch_error(category: str, message: str, ids: Sequence[str], **extra: Any) -> dict[str, Any]:
    return {"status": "error", "category": category, "message": message,
            "context": {"ids": list(ids)}, **extra}  # fmt: skip


def _is_search(path: str) -> bool:
    return path.endswith("/search")


def _endpoint(method: str, pattern: str) -> Callable[[Callable[..., Response]], Any]:
    """A route whose handler runs under the lock and may raise :class:`_Rejected`."""

    def wrap(fn: Callable[..., Response]) -> Any:
        @functools.wraps(fn)
        def handler(self: Emulator, req: Request) -> Response:
            try:
                with self._lock:
                    response = fn(self, req)
            except _Rejected as rejected:
                response = rejected.response
            if not _is_search(req.path):
                response.headers.update(self._rate_headers())
            return response

        return route(method, pattern)(handler)

    return wrap


@functools.lru_cache(maxsize=200_000)
def _epoch_ms(value: str) -> int:
    """A datetime property value (epoch ms or ISO-8601) in epoch milliseconds."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return to_epoch_ms(parse_datetime(text))


def _comparable(ptype: str, value: str) -> Any:
    """A stored or filter value in the order HubSpot compares it (ValueError if it cannot be)."""
    if ptype == "number":
        return float(value)
    if ptype in ("datetime", "date"):
        return _epoch_ms(value)
    return value.lower()


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flag(value: str | None) -> bool:
    return (value or "false").lower() == "true"


def _csv(values: Iterable[str] | None) -> list[str]:
    """``properties`` given comma-separated, repeated, or both."""
    return [p for v in values or () for p in v.split(",") if p]


class Emulator(EmulatorServer):
    """HubSpot's CRM API over contacts and deals, their property definitions and associations."""

    name = "hubspot"

    def __init__(
        self,
        access_token: str = "pat-demo",
        rate_limit: tuple[int, float] | None = (110, 10.0),
        search_rate_limit: tuple[int, float] | None = None,
        *,
        daily_limit: int | None = None,
    ) -> None:
        super().__init__(rate_limit=None)  # HubSpot counts per token: see check_auth
        self.access_token = access_token
        self.ten_secondly = rate_limit
        self.search_rate_limit = search_rate_limit
        self.daily_limit = daily_limit
        self.association_page_size = 500
        self.objects: dict[str, dict[str, CrmObject]] = {"contacts": {}, "deals": {}}
        self.property_defs: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "deals": {}}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "deals": {}}
        self.deal_contacts: dict[str, list[str]] = {}
        self._last_id = 100
        self._recent_calls: deque[float] = deque()
        self._recent_searches: deque[float] = deque()
        self._daily_used = 0
        self._default_schema()

    # -- seeding ---------------------------------------------------------------------------
    def _default_schema(self) -> None:
        for obj, name, label in (
            ("contacts", "contactinformation", "Contact information"),
            ("contacts", "analyticsinformation", "Web analytics history"),
            ("deals", "dealinformation", "Deal information"),
        ):
            self._add_group(obj, name, label)
        contact = functools.partial(self.add_property, "contacts", hubspot_defined=True)
        contact("email", label="Email")
        contact("firstname", label="First Name")
        contact("lastname", label="Last Name")
        contact("company", label="Company Name")
        contact("phone", "string", "phonenumber", "Phone Number")
        contact(
            "lifecyclestage", "enumeration", "radio", "Lifecycle Stage", options=LIFECYCLE_STAGES
        )
        contact("createdate", "datetime", "date", "Create Date", read_only=True)
        contact("lastmodifieddate", "datetime", "date", "Last Modified Date", read_only=True)
        contact("hs_object_id", "number", "number", "Record ID", read_only=True)
        contact(
            "hs_analytics_source", "enumeration", "select", "Original Source",
            group_name="analyticsinformation", options=ANALYTICS_SOURCES, read_only=True,
        )  # fmt: skip
        contact("hs_google_click_id", label="Google ad click id", group_name="analyticsinformation")
        contact(
            "hs_facebook_click_id", label="Facebook click id", group_name="analyticsinformation"
        )
        custom = functools.partial(self.add_property, "contacts")
        custom("ga_client_id", label="GA Client ID", group_name="analyticsinformation")
        custom("utm_source", label="UTM Source", group_name="analyticsinformation")
        custom("utm_medium", label="UTM Medium", group_name="analyticsinformation")
        custom("utm_campaign", label="UTM Campaign", group_name="analyticsinformation")
        custom("closedloop_user_id", label="User ID")
        deal = functools.partial(
            self.add_property, "deals", group_name="dealinformation", hubspot_defined=True
        )
        deal("dealname", label="Deal Name")
        deal("amount", "number", "number", "Amount")
        deal("dealstage", "enumeration", "radio", "Deal Stage", options=DEAL_STAGES)
        deal("pipeline", "enumeration", "select", "Pipeline", options=("default",))
        deal("closedate", "datetime", "date", "Close Date")
        deal("createdate", "datetime", "date", "Create Date", read_only=True)
        deal("hs_lastmodifieddate", "datetime", "date", "Last Modified Date", read_only=True)
        deal("hs_object_id", "number", "number", "Record ID", read_only=True)
        deal("hs_is_closed_won", "bool", "booleancheckbox", "Is Closed Won", read_only=True)
        deal("hs_is_closed", "bool", "booleancheckbox", "Is Deal Closed?", read_only=True)
        deal("deal_currency_code", "enumeration", "select", "Currency", options=CURRENCIES)

    def _add_group(self, obj: str, name: str, label: str) -> dict[str, Any]:
        group = {"name": name, "label": label, "displayOrder": -1, "archived": False}
        self.groups[obj][name] = group
        return group

    def add_property(
        self,
        object_type: str,
        name: str,
        type: str = "string",  # noqa: A002 - HubSpot's own field name
        field_type: str = "text",
        label: str = "",
        group_name: str = "contactinformation",
        options: Sequence[str | dict[str, Any]] | None = None,
        read_only: bool = False,
        *,
        hubspot_defined: bool = False,
    ) -> None:
        """Define a property (seed API: no validation, an unknown group is created)."""
        with self._lock:
            if group_name not in self.groups[object_type]:
                self._add_group(object_type, group_name, group_name.replace("_", " ").title())
            if type == "bool" and not options:
                options = [{"label": "Yes", "value": "true"}, {"label": "No", "value": "false"}]
            self.property_defs[object_type][name] = self._definition(
                name, type, field_type, label or name, group_name, options or (), read_only,
                hubspot_defined,
            )  # fmt: skip

    @staticmethod
    def _definition(
        name: str,
        ptype: str,
        field_type: str,
        label: str,
        group_name: str,
        options: Sequence[str | dict[str, Any]],
        read_only: bool,
        hubspot_defined: bool,
        description: str = "",
    ) -> dict[str, Any]:
        stamp = iso_z(utcnow())
        return {
            "name": name,
            "label": label,
            "type": ptype,
            "fieldType": field_type,
            "groupName": group_name,
            "description": description,
            "options": [
                {"label": o, "value": o, "displayOrder": i, "hidden": False}
                if isinstance(o, str)
                else {"displayOrder": i, "hidden": False, "description": "", **o}
                for i, o in enumerate(options)
            ],
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": False,
            "hidden": False,
            "hubspotDefined": hubspot_defined,
            "formField": not read_only,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
            "modificationMetadata": {
                "archivable": not hubspot_defined,
                "readOnlyDefinition": hubspot_defined,
                "readOnlyValue": read_only,
            },
        }

    def _new_id(self) -> str:
        self._last_id += 1
        return str(self._last_id)

    def _add(
        self,
        obj: str,
        properties: dict[str, str | None],
        created_at: datetime,
        updated_at: datetime | None,
    ) -> CrmObject:
        if created_at.tzinfo is None or (updated_at is not None and updated_at.tzinfo is None):
            raise ValueError("seed datetimes must be timezone-aware")
        created = created_at.astimezone(UTC)
        updated = (updated_at or created_at).astimezone(UTC)
        with self._lock:
            oid = self._new_id()
            props = {k: _text(v) for k, v in properties.items()}
            props.update(
                {"createdate": iso_z(created), MODIFIED[obj]: iso_z(updated), "hs_object_id": oid}
            )
            record = CrmObject(oid, props, created, updated)
            self.objects[obj][oid] = record
            return record

    def add_contact(
        self,
        properties: dict[str, str | None],
        created_at: datetime,
        updated_at: datetime | None = None,
    ) -> str:
        return self._add("contacts", properties, created_at, updated_at).id

    def add_deal(
        self,
        properties: dict[str, str | None],
        created_at: datetime,
        contact_ids: Sequence[str],
        updated_at: datetime | None = None,
    ) -> str:
        with self._lock:
            record = self._add("deals", properties, created_at, updated_at)
            stage = record.properties.get("dealstage")
            record.properties.setdefault(
                "hs_is_closed_won", "true" if stage == "closedwon" else "false"
            )
            closed = stage in ("closedwon", "closedlost")
            record.properties.setdefault("hs_is_closed", "true" if closed else "false")
            self.deal_contacts[record.id] = list(contact_ids)
            return record.id

    def edit(self, object_type: str, id: str, **properties: str | None) -> None:  # noqa: A002
        """A person edits a record in HubSpot: values change and the record counts as modified."""
        with self._lock:
            record = self.objects[object_type][id]
            record.properties.update({k: _text(v) for k, v in properties.items()})
            self._touch(object_type, record)

    def contact(self, id: str) -> dict[str, str | None]:  # noqa: A002
        """Every defined property of a contact (``None`` where it has no value)."""
        return self._values("contacts", id)

    def deal(self, id: str) -> dict[str, str | None]:  # noqa: A002
        return self._values("deals", id)

    def _values(self, obj: str, id: str) -> dict[str, str | None]:  # noqa: A002
        with self._lock:
            stored = self.objects[obj][id].properties
            return {**dict.fromkeys(self.property_defs[obj]), **stored}

    def delete(self, object_type: str, id: str) -> None:  # noqa: A002
        """Archive a record (HubSpot's delete): it leaves lists, searches and updates."""
        with self._lock:
            record = self.objects[object_type][id]
            record.archived = True
            self._touch(object_type, record)

    def delete_contact(self, id: str) -> None:  # noqa: A002
        self.delete("contacts", id)

    def _touch(self, obj: str, record: CrmObject) -> None:
        record.updated_at = max(utcnow(), record.updated_at + timedelta(milliseconds=1))
        record.properties[MODIFIED[obj]] = iso_z(record.updated_at)
        if obj == "deals":
            stage = record.properties.get("dealstage")
            record.properties["hs_is_closed_won"] = "true" if stage == "closedwon" else "false"
            closed = stage in ("closedwon", "closedlost")
            record.properties["hs_is_closed"] = "true" if closed else "false"

    def seed_sample(self) -> None:
        """30 contacts and 30 deals (1-2 buyers each) in the 30 days up to 2026-11-20."""
        rng = random.Random(2026)
        first = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus", "Radia")
        last = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton")
        utms = (
            ("google", "cpc", "brand_search"), ("newsletter", "email", "nov_digest"),
            ("linkedin", "cpc", "abm_q4"), ("facebook", "paid_social", "retarget_nov"),
            (None, None, None),
        )  # fmt: skip
        contact_ids = []
        for i in range(30):
            created = SAMPLE_DAY - timedelta(days=29 - i, hours=rng.randint(1, 20))
            source, medium, campaign = utms[i % len(utms)]
            props: dict[str, str | None] = {
                "email": f"person{i:02d}@example.com",
                "firstname": first[i % len(first)],
                "lastname": last[i % len(last)],
                "company": f"Company {i % 12}",
                "lifecyclestage": LIFECYCLE_STAGES[i % 6],
                "ga_client_id": f"{1_000_000 + i * 7919}.{1_790_000_000 + i * 3600}",
                "utm_source": source,
                "utm_medium": medium,
                "utm_campaign": campaign,
                "hs_google_click_id": f"Cj0KCQiA{i:04d}gclid" if source == "google" else None,
                "hs_facebook_click_id": f"IwAR{i:04d}fbclid" if source == "facebook" else None,
                "closedloop_user_id": f"user-{i:03d}" if i % 3 == 0 else None,
                "hs_analytics_source": "PAID_SEARCH" if medium == "cpc" else "DIRECT_TRAFFIC",
            }
            updated = created + timedelta(hours=rng.randint(1, 30))
            contact_ids.append(self.add_contact(props, created, min(updated, SAMPLE_DAY)))
        for i in range(30):
            created = SAMPLE_DAY - timedelta(days=28 - i * 0.9, hours=rng.randint(0, 5))
            stage = DEAL_STAGES[i % len(DEAL_STAGES)]
            closes = created + timedelta(days=rng.randint(1, 20))
            buyers = [contact_ids[i]] + ([contact_ids[(i + 7) % 30]] if i % 3 == 0 else [])
            self.add_deal(
                {
                    "dealname": f"Deal {i:02d}",
                    "amount": None if i == 5 else f"{rng.randint(10, 500) * 100}",
                    "dealstage": stage,
                    "pipeline": "default",
                    "closedate": iso_z(min(closes, SAMPLE_DAY)),
                    "deal_currency_code": "EUR" if i % 4 == 0 else "USD",
                },
                created,
                buyers,
                updated_at=min(created + timedelta(hours=6), SAMPLE_DAY),
            )

    def adapter_settings(self, *, valid_token: bool = True) -> dict[str, Any]:
        token = self.access_token if valid_token else "pat-na1-00000000-invalid"
        return {"access_token": token, "host": self.url}

    # -- hooks -----------------------------------------------------------------------------
    def check_auth(self, req: Request) -> Response | None:
        if req.headers.get("authorization") != f"Bearer {self.access_token}":
            return _error(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION")
        return self._limit(req)

    def _limit(self, req: Request) -> Response | None:
        now = time.monotonic()
        with self._lock:
            if self.daily_limit is not None and self._daily_used >= self.daily_limit:
                return self._rate_limited("DAILY")
            if _is_search(req.path):
                if self.search_rate_limit and self._over(
                    self._recent_searches, self.search_rate_limit, now
                ):
                    return self._rate_limited("SECONDLY")
            elif self.ten_secondly and self._over(self._recent_calls, self.ten_secondly, now):
                return self._rate_limited("TEN_SECONDLY_ROLLING")
            self._daily_used += 1
        return None

    @staticmethod
    def _over(recent: deque[float], limit: tuple[int, float], now: float) -> bool:
        count, window = limit
        while recent and now - recent[0] >= window:
            recent.popleft()
        if len(recent) >= count:
            return True
        recent.append(now)
        return False

    def _rate_limited(self, policy: str) -> Response:
        body = {
            "status": "error",
            "message": RATE_LIMIT_MESSAGES[policy],
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        }
        headers = {} if policy == "SECONDLY" else self._rate_headers(remaining=0)
        return Response(429, body, headers)

    def _rate_headers(self, remaining: int | None = None) -> dict[str, str]:
        limit, window = self.ten_secondly or (110, 10.0)
        with self._lock:
            if remaining is None:
                now = time.monotonic()
                recent = [t for t in self._recent_calls if now - t < window]
                remaining = max(0, limit - len(recent))
            daily = self.daily_limit or DEFAULT_DAILY_LIMIT
            return {
                "X-HubSpot-RateLimit-Daily": str(daily),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, daily - self._daily_used)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window * 1000)),
                "X-HubSpot-RateLimit-Max": str(limit),
                "X-HubSpot-RateLimit-Remaining": str(remaining),
            }

    def rate_limited_response(self, req: Request) -> Response:
        return self._rate_limited("SECONDLY" if _is_search(req.path) else "TEN_SECONDLY_ROLLING")

    def server_error_response(self, req: Request, status: int) -> Response:
        return _error(status, "An internal error occurred.", "INTERNAL_ERROR")

    def not_found_response(self, req: Request) -> Response:
        return _error(404, f"Unable to route {req.method} {req.path}", "OBJECT_NOT_FOUND")

    # -- helpers -----------------------------------------------------------------------------
    def _object_type(self, name: str) -> str:
        if name not in self.objects:
            _reject(f"Unable to infer object type from: {name}")
        return name

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        try:
            body = req.json()
        except ValueError:
            _reject("Invalid input JSON on line 1, column 1: could not parse the request body")
        if not isinstance(body, dict):
            _reject("Invalid input JSON: expected an object")
        return body

    @staticmethod
    def _inputs(body: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            _reject("Invalid input JSON: 'inputs' must be a list of objects")
        if len(inputs) > limit:
            _reject(f"Too many inputs: {len(inputs)}; a batch accepts at most {limit}")
        return inputs

    def _render(self, obj: str, record: CrmObject, properties: Sequence[str]) -> dict[str, Any]:
        defined = self.property_defs[obj]
        names = dict.fromkeys([*(properties or DEFAULT_PROPERTIES[obj]), *ALWAYS_RETURNED[obj]])
        rendered = {
            "id": record.id,
            "properties": {n: record.properties.get(n) for n in names if n in defined},
            "createdAt": iso_z(record.created_at),
            "updatedAt": iso_z(record.updated_at),
            "archived": record.archived,
        }
        if record.archived:
            rendered["archivedAt"] = iso_z(record.updated_at)
        return rendered

    def _find(self, obj: str, key: str, id_property: str | None) -> CrmObject | None:
        if not id_property or id_property == "hs_object_id":
            return self.objects[obj].get(key)
        wanted = key.lower()
        for record in self.objects[obj].values():
            if (record.properties.get(id_property) or "").lower() == wanted:
                return record
        return None

    @staticmethod
    def _batch(results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> Response:
        stamp = iso_z(utcnow())
        body: dict[str, Any] = {
            "status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp,
        }  # fmt: skip
        if not errors:
            return Response(200, body)
        return Response(207, {**body, "numErrors": len(errors), "errors": errors})

    # -- objects ----------------------------------------------------------------------------
    @_endpoint("GET", r"/crm/v3/objects/(?P<type>[^/]+)")
    def list_objects(self, req: Request) -> Response:
        obj = self._object_type(req.params["type"])
        try:
            limit = int(req.arg("limit") or 10)
            after = int(req.arg("after") or 0)
        except ValueError:
            _reject("limit and after must be integers")
        if not 0 < limit <= MAX_LIST_LIMIT:
            _reject(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        archived = _flag(req.arg("archived"))
        properties = _csv(req.query.get("properties"))
        rows = [
            r for r in self.objects[obj].values() if r.archived == archived and int(r.id) >= after
        ]
        body: dict[str, Any] = {"results": [self._render(obj, r, properties) for r in rows[:limit]]}
        if len(rows) > limit:
            cursor = rows[limit].id
            link = f"{self.url}/crm/v3/objects/{obj}?limit={limit}&after={cursor}"
            body["paging"] = {"next": {"after": cursor, "link": link}}
        return Response(200, body)

    @_endpoint("POST", r"/crm/v3/objects/(?P<type>[^/]+)/search")
    def search(self, req: Request) -> Response:
        obj = self._object_type(req.params["type"])
        body = self._body(req)
        try:
            limit = int(body.get("limit") or 10)
            after = int(body.get("after") or 0)
        except (TypeError, ValueError):
            _reject("limit and after must be integers")
        if not 0 < limit <= MAX_SEARCH_LIMIT:
            _reject(f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
        if after + limit > SEARCH_WINDOW:
            _reject(
                f"The search API returns at most {SEARCH_WINDOW} results: after ({after}) + "
                f"limit ({limit}) exceeds it. Narrow the filters instead of paging further."
            )
        matches = self._filter(obj, body.get("filterGroups") or [], body.get("query"))
        matches = self._sort(obj, matches, body.get("sorts") or [])
        properties = body.get("properties") or []
        response: dict[str, Any] = {
            "total": len(matches),
            "results": [self._render(obj, r, properties) for r in matches[after : after + limit]],
        }
        if after + limit < len(matches):
            link = f"{self.url}/crm/v3/objects/{obj}/search?after={after + limit}"
            response["paging"] = {"next": {"after": str(after + limit), "link": link}}
        return Response(200, response)

    def _filter(self, obj: str, groups: Any, query: Any) -> list[CrmObject]:
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            _reject("filterGroups must be a list of objects")
        filters = [g.get("filters") or [] for g in groups]
        if (
            len(groups) > MAX_FILTER_GROUPS
            or any(len(f) > MAX_FILTERS_PER_GROUP for f in filters)
            or sum(len(f) for f in filters) > MAX_FILTERS
        ):
            _reject(
                f"Too many filters: at most {MAX_FILTER_GROUPS} filterGroups of "
                f"{MAX_FILTERS_PER_GROUP} filters each, {MAX_FILTERS} filters in all"
            )
        tests = [[self._predicate(obj, f) for f in group] for group in filters]
        text = str(query).lower() if query else ""
        return [
            r
            for r in self.objects[obj].values()
            if not r.archived
            and (not tests or any(all(t(r) for t in group) for group in tests))
            and (
                not text
                or any(text in (r.properties.get(p) or "").lower() for p in SEARCHABLE[obj])
            )
        ]

    def _predicate(self, obj: str, spec: Any) -> Callable[[CrmObject], bool]:
        """One search filter as a test on a record."""
        if not isinstance(spec, dict):
            _reject("each filter must be an object")
        name, operator = str(spec.get("propertyName")), spec.get("operator")
        definition = self.property_defs[obj].get(name)
        if definition is None:
            _reject(f"Property {name!r} does not exist on {obj}", category="VALIDATION_ERROR")
        if operator not in OPERATORS:
            _reject(f"Unknown filter operator {operator!r}")
        ptype = definition["type"]

        def value_of(raw: Any) -> Any:
            try:
                return _comparable(ptype, str(raw))
            except ValueError:
                _reject(f"{raw!r} is not a valid value for {ptype} property {name}")

        def stored(record: CrmObject) -> Any:
            raw = record.properties.get(name)
            if raw is None or raw == "":
                return None
            try:
                return _comparable(ptype, raw)
            except ValueError:
                return None

        if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            wanted = operator == "HAS_PROPERTY"
            return lambda r: (stored(r) is not None) == wanted
        if operator in ("IN", "NOT_IN"):
            values = {value_of(v) for v in spec.get("values") or []}
            inside = operator == "IN"
            return lambda r: (stored(r) in values) == inside
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(spec.get("value", "")).strip("*").lower()
            contains = operator == "CONTAINS_TOKEN"
            return lambda r: (token in (r.properties.get(name) or "").lower()) == contains
        value = value_of(spec.get("value"))
        if operator == "BETWEEN":
            high = value_of(spec.get("highValue"))
            return lambda r: (v := stored(r)) is not None and value <= v <= high
        if operator == "NEQ":
            return lambda r: stored(r) != value
        compare: dict[str, Callable[[Any], bool]] = {
            "EQ": lambda v: v == value,
            "LT": lambda v: v < value,
            "LTE": lambda v: v <= value,
            "GT": lambda v: v > value,
            "GTE": lambda v: v >= value,
        }
        test = compare[operator]
        return lambda r: (v := stored(r)) is not None and test(v)

    def _sort(self, obj: str, rows: list[CrmObject], sorts: Any) -> list[CrmObject]:
        if not sorts:
            return rows
        first = sorts[0]
        if isinstance(first, str):
            name, descending = first.lstrip("-"), first.startswith("-")
        elif isinstance(first, dict):
            name = str(first.get("propertyName"))
            descending = str(first.get("direction", "ASCENDING")).upper() == "DESCENDING"
        else:
            _reject("sorts must be property names or {propertyName, direction} objects")
        definition = self.property_defs[obj].get(name)
        if definition is None:
            _reject(f"Cannot sort by unknown property {name!r}")
        ptype = definition["type"]

        def key(record: CrmObject) -> tuple[bool, Any]:
            raw = record.properties.get(name)
            try:
                return (False, _comparable(ptype, raw)) if raw else (True, 0)
            except ValueError:
                return (True, 0)

        return sorted(rows, key=key, reverse=descending)

    @_endpoint("POST", r"/crm/v3/objects/(?P<type>[^/]+)/batch/read")
    def batch_read(self, req: Request) -> Response:
        obj = self._object_type(req.params["type"])
        body = self._body(req)
        inputs = self._inputs(body, MAX_BATCH)
        archived = _flag(req.arg("archived"))
        id_property = body.get("idProperty")
        properties = body.get("properties") or []
        results, missing = [], []
        for item in inputs:
            key = str(item.get("id"))
            record = self._find(obj, key, id_property)
            if record is None or record.archived != archived:
                missing.append(key)
            else:
                results.append(self._render(obj, record, properties))
        errors = []
        if missing:
            message = (
                f"Could not get some {SINGULAR[obj]} objects, they may be deleted or not exist. "
                "Check that ids are valid."
            )
            errors.append(_batch_error("OBJECT_NOT_FOUND", message, missing))
        return self._batch(results, errors)

    @_endpoint("POST", r"/crm/v3/objects/(?P<type>[^/]+)/batch/update")
    def batch_update(self, req: Request) -> Response:
        obj = self._object_type(req.params["type"])
        inputs = self._inputs(self._body(req), MAX_BATCH)
        ids = [str(i.get("id")) for i in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            _reject(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
        results, errors, missing = [], [], []
        for key, item in zip(ids, inputs, strict=True):
            record = self._find(obj, key, item.get("idProperty"))
            if record is None or record.archived:
                missing.append(key)
                continue
            values = item.get("properties")
            if not isinstance(values, dict):
                errors.append(
                    _batch_error("VALIDATION_ERROR", "properties must be an object", [key])
                )
                continue
            checked = {name: self._check_value(obj, name, value) for name, value in values.items()}
            problems = [problem for _, problem in checked.values() if problem]
            if problems:
                message = f"Property values were not valid: {json.dumps(problems)}"
                errors.append(_batch_error("VALIDATION_ERROR", message, [key]))
                continue
            record.properties.update({name: value for name, (value, _) in checked.items()})
            self._touch(obj, record)
            results.append(self._render(obj, record, list(values)))
        if missing:
            message = (
                f"Could not get some {SINGULAR[obj]} objects, they may be deleted or not exist. "
                "Check that ids are valid."
            )
            errors.insert(0, _batch_error("OBJECT_NOT_FOUND", message, missing))
        return self._batch(results, errors)

    def _check_value(
        self, obj: str, name: str, value: Any
    ) -> tuple[str | None, dict[str, Any] | None]:
        """The value as HubSpot stores it, or the problem HubSpot reports for it."""

        def problem(error: str, message: str) -> tuple[None, dict[str, Any]]:
            return None, {"isValid": False, "message": message, "error": error, "name": name}

        definition = self.property_defs[obj].get(name)
        if definition is None:
            return problem("PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
        if definition["modificationMetadata"]["readOnlyValue"]:
            return problem(
                "READ_ONLY_VALUE", f"{name} is a read only property; its value cannot be set."
            )
        text = _text(value) or ""
        if text == "":
            return "", None
        ptype = definition["type"]
        if ptype == "number":
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                return problem("INVALID_FLOAT", f"{text} was not a valid number.")
            return text, None
        if ptype == "bool":
            if text.lower() not in ("true", "false"):
                return problem(
                    "INVALID_BOOLEAN", f"{text} was not a valid boolean (true or false)."
                )
            return text.lower(), None
        if ptype == "enumeration":
            allowed = [o["value"] for o in definition["options"]]
            chosen = text.split(";") if definition["fieldType"] == "checkbox" else [text]
            if any(c not in allowed for c in chosen):
                return problem(
                    "INVALID_OPTION",
                    f"{text} was not one of the allowed options: [{', '.join(allowed)}]",
                )
            return text, None
        if ptype in ("datetime", "date"):
            try:
                moment = from_epoch_ms(_epoch_ms(text))
            except ValueError:
                return problem("INVALID_DATE", f"{text} is not a valid date/time.")
            if ptype == "datetime":
                return iso_z(moment), None
            if moment.time() != datetime.min.time():
                return problem("INVALID_DATE", f"{text} is not midnight UTC, as a date must be.")
            return moment.date().isoformat(), None
        if len(text) > MAX_STRING_LENGTH:
            return problem(
                "INVALID_STRING", f"{name} is longer than {MAX_STRING_LENGTH} characters."
            )
        return text, None

    # -- properties -------------------------------------------------------------------------
    @_endpoint("GET", r"/crm/v3/properties/(?P<type>[^/]+)")
    def list_properties(self, req: Request) -> Response:
        obj = self._object_type(req.params["type"])
        return Response(200, {"results": [dict(p) for p in self.property_defs[obj].values()]})

    @_endpoint("POST", r"/crm/v3/properties/(?P<type>[^/]+)")
    def create_property(self, req: Request) -> Response:
        obj = self._object_type(req.params["type"])
        body = self._body(req)
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            _reject(f"Missing required fields: {', '.join(missing)}")
        name, ptype, field_type = body["name"], body["type"], body["fieldType"]
        if not PROPERTY_NAME.fullmatch(name):
            _reject(f"Property name {name!r} must be lowercase letters, digits and underscores")
        if ptype not in PROPERTY_TYPES or field_type not in FIELD_TYPES:
            _reject(f"Invalid type/fieldType combination: {ptype}/{field_type}")
        if body["groupName"] not in self.groups[obj]:
            _reject(f"Property group {body['groupName']!r} does not exist for {obj}")
        options = body.get("options") or []
        if ptype in ("enumeration", "bool") and not options:
            _reject(f"Property {name!r} of type {ptype} needs options")
        if name in self.property_defs[obj]:
            _reject(f"Property named '{name}' already exists.", 409, "OBJECT_ALREADY_EXISTS")
        definition = self._definition(
            name, ptype, field_type, body["label"], body["groupName"], options,
            read_only=False, hubspot_defined=False, description=body.get("description") or "",
        )  # fmt: skip
        self.property_defs[obj][name] = definition
        return Response(201, definition)

    @_endpoint("GET", r"/crm/v3/properties/(?P<type>[^/]+)/groups")
    def list_groups(self, req: Request) -> Response:
        obj = self._object_type(req.params["type"])
        return Response(200, {"results": [dict(g) for g in self.groups[obj].values()]})

    @_endpoint("POST", r"/crm/v3/properties/(?P<type>[^/]+)/groups")
    def create_group(self, req: Request) -> Response:
        obj = self._object_type(req.params["type"])
        body = self._body(req)
        name, label = body.get("name"), body.get("label")
        if not name or not label:
            _reject("Missing required fields: name and label")
        if not PROPERTY_NAME.fullmatch(name):
            _reject(f"Group name {name!r} must be lowercase letters, digits and underscores")
        if name in self.groups[obj]:
            _reject(
                f"A property group named '{name}' already exists.", 409, "OBJECT_ALREADY_EXISTS"
            )
        return Response(201, self._add_group(obj, name, label))

    # -- associations -----------------------------------------------------------------------
    @_endpoint("POST", r"/crm/v4/associations/(?P<from_type>[^/]+)/(?P<to_type>[^/]+)/batch/read")
    def read_associations(self, req: Request) -> Response:
        pair = (req.params["from_type"], req.params["to_type"])
        if pair not in ASSOCIATION_TYPE_IDS:
            _reject(f"Unable to infer object types from: {pair[0]}, {pair[1]}")
        inputs = self._inputs(self._body(req), MAX_ASSOCIATION_INPUTS)
        type_id = ASSOCIATION_TYPE_IDS[pair]
        size = self.association_page_size
        results, errors = [], []
        for item in inputs:
            key = str(item.get("id"))
            start = int(item.get("after") or 0)
            targets = self._associated(pair, key)
            if not targets:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": f"No {pair[1]} are associated with {pair[0].rstrip('s')} {key}.",
                        "context": {"fromObjectId": [key]},
                    }
                )
                continue
            result: dict[str, Any] = {
                "from": {"id": key},
                "to": [
                    {
                        "toObjectId": int(target),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
                        ],
                    }
                    for target in targets[start : start + size]
                ],
            }
            if start + size < len(targets):
                result["paging"] = {"next": {"after": str(start + size), "link": None}}
            results.append(result)
        return self._batch(results, errors)

    def _associated(self, pair: tuple[str, str], key: str) -> list[str]:
        from_type, to_type = pair
        source = self.objects[from_type].get(key)
        if source is None or source.archived:
            return []
        if from_type == "deals":
            targets = self.deal_contacts.get(key, [])
        else:
            targets = [d for d, buyers in self.deal_contacts.items() if key in buyers]
        return [
            t
            for t in targets
            if t in self.objects[to_type] and not self.objects[to_type][t].archived
        ]
