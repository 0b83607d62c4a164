"""A wire-faithful local HubSpot CRM API for tests and the demo.

Serves, as ``hubspot-api-client`` calls them (``{type}`` is ``contacts``, ``deals`` or a custom
object's name, objectTypeId ``2-<n>`` or fullyQualifiedName ``p<portalId>_<name>``):

- ``GET /crm/v3/objects/{type}``: list; ``limit`` <= 100, ``after``, ``properties``.
- ``POST /crm/v3/objects/{type}/search``: ``filterGroups`` (<= 5 groups, <= 10 filters each,
  <= 25 in all), the CRM search operators, one sort, ``limit`` <= 200, and the search API's
  10,000-result window (``after + limit > 10000`` is a 400).
- ``POST /crm/v3/objects/{type}/batch/read`` and ``/batch/update``: <= 100 inputs; a partial
  failure is a 207 with per-id ``errors`` (``OBJECT_NOT_FOUND``, ``VALIDATION_ERROR``,
  ``CONFLICT`` for another record's unique value). ``idProperty`` must be a unique property.
- ``POST /crm/v3/objects/{type}/batch/upsert`` (<= 100, by ``idProperty``; results carry
  ``new``; any invalid input fails the batch with a 400) and ``/batch/archive`` (204).
- ``GET|POST /crm/v3/properties/{type}`` and ``/crm/v3/properties/{type}/groups``: definitions,
  creation, 409 on duplicates.
- ``GET|POST /crm/v3/schemas`` (also ``/crm-object-schemas/v3/schemas``, the client's path) and
  ``GET .../schemas/{type}``: custom objects; 409 on a taken name; with ``custom_objects=False``
  (a portal below Enterprise, whose apps cannot hold the custom-object scopes) reading or
  creating them is a 403 ``MISSING_SCOPES``.
- ``POST /crm/v4/associations/{from}/{to}/batch/read`` (<= 1000 inputs, per-input paging),
  ``/batch/associate/default``, ``/batch/create`` (labelled: ``types`` must be the pair's type)
  and ``/batch/archive`` (<= 2000 inputs each); an unknown record fails the request with
  HubSpot's "One or more associations are invalid".
- ``GET /crm/v3/pipelines/deals``: the deal pipelines and their stages (ids, labels, order,
  ``isClosed`` / ``probability`` metadata); ``add_pipeline`` adds one.
- ``GET /account-info/v3/details``: the portal's id, time zone (``time_zone``, default
  ``US/Eastern``) and currency.

Seed and test helpers: ``add_contact``, ``add_deal``, ``add_object``, ``edit``, ``delete``,
``contact``, ``deal``, ``record``, ``add_property``, ``install_touchpoints_schema``,
``association_type_id``, ``seed_sample``; attributes ``objects``, ``property_defs``,
``schemas``, ``associations``, ``deal_contacts``, ``portal_id``, ``custom_objects``.

Errors use HubSpot's envelope ``{"status": "error", "message", "correlationId", "category"}``.
Limits are per token, so they apply after authentication: the rolling ten-second limit
(``rate_limit``; ``X-HubSpot-RateLimit-*`` headers on every non-search response), the search
limit (``search_rate_limit``; search responses carry no rate-limit headers) and an optional
daily limit, each answered by a 429 with HubSpot's ``RATE_LIMIT`` body.

References: https://developers.hubspot.com/docs/api/crm/understanding-the-crm,
https://developers.hubspot.com/docs/api/crm/search, https://developers.hubspot.com/docs/api/usage-details
"""

from __future__ import annotations

import copy
import functools
import json
import math
import random
import re
import time
import uuid
import zoneinfo
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from adapters._emulator import EmulatorServer, Request, Response, route
from adapters.hubspot import touchpoint_schema
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

MAX_ASSOCIATION_WRITES = 2000  # batch/create, batch/associate/default, batch/archive (v4)
DEFAULT_PORTAL_ID = 4_242_424
# HubSpot-defined association types (v4 typeId); custom objects get theirs from the schema.
ASSOCIATION_TYPE_IDS = {("deals", "contacts"): 3, ("contacts", "deals"): 4}
CUSTOM_OBJECT_SCOPE = "crm.schemas.custom.write"
CUSTOM_OBJECT_READ_SCOPE = "crm.schemas.custom.read"
SCHEMAS = r"/(?:crm/v3|crm-object-schemas/v3)/schemas"  # the client uses the second


@dataclass(frozen=True)
class ObjectType:
    """What the CRM API needs to know about an object type beyond its property definitions."""

    key: str  # how the emulator keys it: contacts, deals, or a custom object's name
    object_type_id: str  # 0-1, 0-3, 2-<n>
    aliases: frozenset[str]  # every name the API accepts in a path
    singular: str  # in messages: CONTACT, DEAL, the custom object's name in capitals
    created: str  # the create-date property
    modified: str  # the last-modified property
    defaults: tuple[str, ...]  # returned when no ``properties`` are asked for
    always: tuple[str, ...]  # returned whatever is asked for
    searchable: tuple[str, ...]  # matched by a search's ``query``
    unique: frozenset[str] = frozenset()  # properties an ``idProperty`` may name


STANDARD_TYPES = (
    ObjectType(
        "contacts", "0-1", frozenset({"contacts", "contact", "0-1", "CONTACT"}), "CONTACT",
        "createdate", "lastmodifieddate",
        ("createdate", "email", "firstname", "lastname", "lastmodifieddate"),
        ("hs_object_id", "createdate", "lastmodifieddate"),
        ("email", "firstname", "lastname", "company"), frozenset({"email", "hs_object_id"}),
    ),
    ObjectType(
        "deals", "0-3", frozenset({"deals", "deal", "0-3", "DEAL"}), "DEAL",
        "createdate", "hs_lastmodifieddate",
        ("amount", "closedate", "createdate", "dealname", "dealstage", "pipeline"),
        ("hs_object_id", "createdate", "hs_lastmodifieddate"),
        ("dealname",), frozenset({"hs_object_id"}),
    ),
)  # fmt: skip

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
# The default "Sales Pipeline" of a new portal: (stage id, label, probability).
DEFAULT_PIPELINE = (
    ("appointmentscheduled", "Appointment Scheduled", 0.2),
    ("qualifiedtobuy", "Qualified To Buy", 0.4),
    ("presentationscheduled", "Presentation Scheduled", 0.6),
    ("decisionmakerboughtin", "Decision Maker Bought-In", 0.8),
    ("contractsent", "Contract Sent", 0.9),
    ("closedwon", "Closed Won", 1.0),
    ("closedlost", "Closed Lost", 0.0),
)
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
        portal_id: int = DEFAULT_PORTAL_ID,
        custom_objects: bool = True,
        time_zone: str = "US/Eastern",
    ) -> None:
        super().__init__(rate_limit=None)  # HubSpot counts per token: see check_auth
        self.access_token = access_token
        self.ten_secondly = rate_limit
        self.search_rate_limit = search_rate_limit
        self.daily_limit = daily_limit
        self.association_page_size = 500
        self.portal_id = portal_id
        self.custom_objects = custom_objects
        self.types: dict[str, ObjectType] = {t.key: t for t in STANDARD_TYPES}
        self.objects: dict[str, dict[str, CrmObject]] = {t: {} for t in self.types}
        self.property_defs: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in self.types}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in self.types}
        self.schemas: dict[str, dict[str, Any]] = {}  # custom object name -> its schema
        # (from type, to type) -> from id -> to id -> association type ids, both directions
        self.associations: dict[tuple[str, str], dict[str, dict[str, list[int]]]] = {}
        self.association_types: dict[tuple[str, str], tuple[str, int]] = {
            pair: ("HUBSPOT_DEFINED", type_id) for pair, type_id in ASSOCIATION_TYPE_IDS.items()
        }
        self._last_schema_id = 1_000_000
        self._last_association_type_id = 100
        self.time_zone = time_zone
        self.pipelines: list[dict[str, Any]] = []
        self._last_id = 100
        self._recent_calls: deque[float] = deque()
        self._recent_searches: deque[float] = deque()
        self._daily_used = 0
        # (object, property) -> folded value -> ids that held it: unique values found without a
        # scan per input (a candidate is checked against the record before it counts)
        self._indexes: dict[tuple[str, str], dict[str, dict[str, None]]] = {}
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
        deal("dealstage", "enumeration", "radio", "Deal Stage", options=())
        deal("pipeline", "enumeration", "select", "Pipeline", options=())
        deal("closedate", "datetime", "date", "Close Date")
        deal("createdate", "datetime", "date", "Create Date", read_only=True)
        deal("hs_lastmodifieddate", "datetime", "date", "Last Modified Date", read_only=True)
        deal("hs_object_id", "number", "number", "Record ID", read_only=True)
        deal("hs_is_closed_won", "bool", "booleancheckbox", "Is Closed Won", read_only=True)
        deal("hs_is_closed", "bool", "booleancheckbox", "Is Deal Closed?", read_only=True)
        deal("deal_currency_code", "enumeration", "select", "Currency", options=CURRENCIES)
        self.add_pipeline("default", "Sales Pipeline", DEFAULT_PIPELINE)

    def add_pipeline(
        self, pipeline_id: str, label: str, stages: Sequence[tuple[str, str, float]]
    ) -> None:
        """A deal pipeline with its (stage id, label, probability) stages, in order; a stage of
        probability 1 is closed won, 0 closed lost. Stage ids become ``dealstage`` options."""
        stamp = iso_z(SAMPLE_DAY - timedelta(days=3650))
        with self._lock:
            self.pipelines.append({
                "id": pipeline_id, "label": label, "displayOrder": len(self.pipelines),
                "createdAt": stamp, "updatedAt": stamp, "archived": False,
                "stages": [
                    {"id": sid, "label": slabel, "displayOrder": n, "createdAt": stamp,
                     "updatedAt": stamp, "archived": False,
                     "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                     "metadata": {"isClosed": str(p in (0.0, 1.0)).lower(),
                                  "probability": str(p)}}
                    for n, (sid, slabel, p) in enumerate(stages)
                ],
            })  # fmt: skip
            definitions = self.property_defs["deals"]
            for name, values in (
                ("dealstage", [s[0] for s in stages]),
                ("pipeline", [pipeline_id]),
            ):
                options = definitions[name]["options"]
                for value in values:
                    options.append({"label": value, "value": value, "displayOrder": len(options),
                                    "hidden": False, "description": ""})  # fmt: skip

    def _stage_flags(self, stage: str | None) -> tuple[bool, bool]:
        """(closed, won) of a deal stage, from its pipeline's metadata."""
        for pipeline in self.pipelines:
            for s in pipeline["stages"]:
                if s["id"] == stage:
                    closed = s["metadata"]["isClosed"] == "true"
                    return closed, closed and float(s["metadata"]["probability"]) == 1.0
        return False, False

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
            kind = self.types[obj]
            props.update(
                {kind.created: iso_z(created), kind.modified: iso_z(updated), "hs_object_id": oid}
            )
            record = CrmObject(oid, props, created, updated)
            self.objects[obj][oid] = record
            self._reindex(obj, record)
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
            closed, won = self._stage_flags(record.properties.get("dealstage"))
            record.properties.setdefault("hs_is_closed_won", "true" if won else "false")
            record.properties.setdefault("hs_is_closed", "true" if closed else "false")
            for contact_id in contact_ids:
                self._link("deals", record.id, "contacts", contact_id)
            return record.id

    @property
    def deal_contacts(self) -> dict[str, list[str]]:
        """Each deal's associated contact ids (what the v4 associations API serves)."""
        with self._lock:
            links = self.associations.get(("deals", "contacts"), {})
            return {deal: list(links.get(deal, {})) for deal in self.objects["deals"]}

    def edit(self, object_type: str, id: str, **properties: str | None) -> None:  # noqa: A002
        """A person edits a record in HubSpot: values change and the record counts as modified."""
        with self._lock:
            record = self.objects[object_type][id]
            record.properties.update({k: _text(v) for k, v in properties.items()})
            self._reindex(object_type, record)
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
        record.properties[self.types[obj].modified] = iso_z(record.updated_at)
        if obj == "deals":
            closed, won = self._stage_flags(record.properties.get("dealstage"))
            record.properties["hs_is_closed_won"] = "true" if won else "false"
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
        """The emulator's key for a path's object type, or HubSpot's 400."""
        kind = self._resolve(name)
        if kind is None:
            _reject(f"Unable to infer object type from: {name}")
        return kind.key

    def _resolve(self, name: str) -> ObjectType | None:
        """An object type by name, objectTypeId or (custom objects) fullyQualifiedName."""
        return next((t for t in self.types.values() if name in t.aliases), None)

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
        kind = self.types[obj]
        names = dict.fromkeys([*(properties or kind.defaults), *kind.always])
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

    def _find(
        self, obj: str, key: str, id_property: str | None, archived: bool = False
    ) -> CrmObject | None:
        """The record ``key`` names: by id, or by a unique property among the live records
        (``archived``: among the archived ones; an archived record released its value)."""
        if not id_property or id_property == "hs_object_id":
            return self.objects[obj].get(key)
        self._id_property(obj, id_property)
        found = self._having(obj, id_property, key, archived=True)
        return next((r for r in found if r.archived == archived), None)

    def _having(
        self, obj: str, name: str, value: str, *, archived: bool = False
    ) -> list[CrmObject]:
        """Records (archived ones too if asked) whose property ``name`` holds ``value``, as a
        unique property compares: exactly, except emails, which ignore case."""
        fold = str.lower if name == "email" else (lambda v: v)
        index = self._indexes.get((obj, name))
        if index is None:
            index = self._indexes[(obj, name)] = {}
            for record in self.objects[obj].values():
                if (stored := record.properties.get(name)) is not None:
                    index.setdefault(fold(stored), {})[record.id] = None
        wanted, found = fold(value), []
        for record_id in index.get(wanted, {}):
            record = self.objects[obj][record_id]
            stored = record.properties.get(name)
            if (archived or not record.archived) and stored is not None and fold(stored) == wanted:
                found.append(record)
        return found

    def _reindex(self, obj: str, record: CrmObject) -> None:
        """Note a record's values in the indexes built so far (see ``_having``)."""
        for (kind, name), index in self._indexes.items():
            if kind == obj and (stored := record.properties.get(name)) is not None:
                folded = stored.lower() if name == "email" else stored
                index.setdefault(folded, {})[record.id] = None

    def _id_property(self, obj: str, name: Any) -> str:
        """``idProperty`` must name a property with unique values."""
        definition = self.property_defs[obj].get(str(name))
        unique = name in self.types[obj].unique or (definition or {}).get("hasUniqueValue")
        if not unique:
            _reject(
                f"Unable to perform update/upsert by non-unique "
                f"{self.types[obj].object_type_id} property {name} in portal ID {self.portal_id}"
            )
        return str(name)

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
        searchable = self.types[obj].searchable
        return [
            r
            for r in self.objects[obj].values()
            if not r.archived
            and (not tests or any(all(t(r) for t in group) for group in tests))
            and (not text or any(text in (r.properties.get(p) or "").lower() for p in searchable))
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
            record = self._find(obj, key, id_property, archived)
            if record is None or record.archived != archived:
                missing.append(key)
            else:
                results.append(self._render(obj, record, properties))
        return self._batch(results, [self._not_found(obj, missing)] if missing else [])

    def _not_found(self, obj: str, missing: list[str]) -> dict[str, Any]:
        message = (
            f"Could not get some {self.types[obj].singular} objects, they may be deleted or not "
            "exist. Check that ids are valid."
        )
        return _batch_error("OBJECT_NOT_FOUND", message, missing)

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
            clash = self._unique_clash(obj, record, {n: v for n, (v, _) in checked.items()})
            if clash is not None:
                errors.append(_batch_error("CONFLICT", clash, [key]))
                continue
            record.properties.update({name: value for name, (value, _) in checked.items()})
            self._reindex(obj, record)
            self._touch(obj, record)
            results.append(self._render(obj, record, list(values)))
        if missing:
            errors.insert(0, self._not_found(obj, missing))
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

    # -- custom objects: schemas ------------------------------------------------------------
    def install_touchpoints_schema(self) -> dict[str, Any]:
        """Create the ``touchpoints`` object as ``POST /crm/v3/schemas`` with
        :data:`.touchpoint_schema.SCHEMA` would (it is absent by default); returns the schema."""
        if not self.custom_objects:
            raise RuntimeError("a portal without custom objects cannot hold the schema")
        with self._lock:
            return self._create_schema(copy.deepcopy(touchpoint_schema.SCHEMA))

    def association_type_id(self, from_type: str, to_type: str) -> int:
        """The v4 ``associationTypeId`` from one object type to another (names or ids)."""
        with self._lock:
            pair = (self._resolve(from_type), self._resolve(to_type))
            if pair[0] is None or pair[1] is None:
                raise KeyError(f"unknown object type in {from_type}, {to_type}")
            return self.association_types[(pair[0].key, pair[1].key)][1]

    def _missing_scopes(self, scope: str) -> _Rejected:
        """What a portal below Enterprise answers on the schemas API: its private apps cannot
        hold the custom-object scopes, so reads and writes alike are refused."""
        return _Rejected(
            _error(
                403,
                "This app hasn't been granted all required scopes to make this call. "
                "Read more about required scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [scope]},
                    }
                ],
                links={"scopes": "https://developers.hubspot.com/scopes"},
            )
        )

    @_endpoint("GET", SCHEMAS)
    def list_schemas(self, req: Request) -> Response:
        if not self.custom_objects:
            raise self._missing_scopes(CUSTOM_OBJECT_READ_SCOPE)
        return Response(200, {"results": [self._schema_json(name) for name in self.schemas]})

    @_endpoint("GET", SCHEMAS + r"/(?P<type>[^/]+)")
    def get_schema(self, req: Request) -> Response:
        if not self.custom_objects:
            raise self._missing_scopes(CUSTOM_OBJECT_READ_SCOPE)
        kind = self._resolve(req.params["type"])
        if kind is None or kind.key not in self.schemas:
            return _error(
                404, f"Unable to find object type {req.params['type']}", "OBJECT_NOT_FOUND"
            )
        return Response(200, self._schema_json(kind.key))

    @_endpoint("POST", SCHEMAS)
    def create_schema(self, req: Request) -> Response:
        if not self.custom_objects:  # below Enterprise the app cannot hold the schema scopes
            raise self._missing_scopes(CUSTOM_OBJECT_SCOPE)
        return Response(201, self._create_schema(self._body(req)))

    def _create_schema(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate an ObjectSchemaEgg and define the object type, its properties and its
        association types; the schema as HubSpot returns it."""
        required = ("name", "labels", "properties", "requiredProperties", "associatedObjects")
        missing = [k for k in required if body.get(k) is None]
        if missing:
            _reject(f"Missing required fields: {', '.join(missing)}")
        name, labels = body["name"], body["labels"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            _reject(f"Object name {name!r} must be letters, digits and underscores")
        if self._resolve(name) is not None:
            _reject(f"Object type with name {name} already exists", 409, "OBJECT_ALREADY_EXISTS")
        if not isinstance(labels, dict) or not labels.get("singular") or not labels.get("plural"):
            _reject("labels needs a singular and a plural label")
        properties = self._schema_properties(body["properties"])
        names = {p["name"] for p in properties}
        for key in ("requiredProperties", "searchableProperties", "secondaryDisplayProperties"):
            unknown = [n for n in body.get(key) or [] if n not in names]
            if unknown:
                _reject(f"{key} names properties the object does not define: {unknown}")
        primary = body.get("primaryDisplayProperty")
        if primary is not None and primary not in names:
            _reject(f"primaryDisplayProperty {primary!r} is not one of the object's properties")
        targets = [self._resolve(str(o)) for o in body["associatedObjects"]]
        if any(t is None or t.key not in {"contacts", "deals"} for t in targets):
            _reject(f"Unable to associate to object types {body['associatedObjects']}")
        self._last_schema_id += 1
        type_id = f"2-{self._last_schema_id}"
        qualified = f"p{self.portal_id}_{name}"
        always = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
        self.types[name] = ObjectType(
            name, type_id, frozenset({name, type_id, qualified}), qualified.upper(),
            "hs_createdate", "hs_lastmodifieddate", always, always,
            tuple(body.get("searchableProperties") or ()),
        )  # fmt: skip
        self.objects[name], self.groups[name], self.property_defs[name] = {}, {}, {}
        group = f"{name}_information"
        self._add_group(name, group, f"{labels['singular']} information")
        define = functools.partial(self.add_property, name, group_name=group)
        hubspot = functools.partial(define, read_only=True, hubspot_defined=True)
        hubspot("hs_object_id", "number", "number", "Record ID")
        hubspot("hs_createdate", "datetime", "date", "Create date")
        hubspot("hs_lastmodifieddate", "datetime", "date", "Last modified date")
        for prop in properties:
            define(prop["name"], prop["type"], prop["fieldType"], prop["label"],
                   options=prop.get("options"))  # fmt: skip
            definition = self.property_defs[name][prop["name"]]
            definition["hasUniqueValue"] = bool(prop.get("hasUniqueValue"))
            definition["description"] = prop.get("description") or ""
        stamp = iso_z(utcnow())
        associations = []
        for target in targets:
            assert target is not None
            self._last_association_type_id += 2
            forward = self._last_association_type_id
            self.association_types[(name, target.key)] = ("USER_DEFINED", forward)
            self.association_types[(target.key, name)] = ("USER_DEFINED", forward + 1)
            associations.append(
                {"id": str(forward), "name": f"{name}_to_{target.key.rstrip('s')}",
                 "fromObjectTypeId": type_id, "toObjectTypeId": target.object_type_id,
                 "createdAt": stamp, "updatedAt": stamp}
            )  # fmt: skip
        self.schemas[name] = {
            "id": str(self._last_schema_id),
            "objectTypeId": type_id,
            "fullyQualifiedName": qualified,
            "name": name,
            "labels": {"singular": labels["singular"], "plural": labels["plural"]},
            "description": body.get("description") or "",
            "primaryDisplayProperty": primary,
            "requiredProperties": list(body["requiredProperties"]),
            "searchableProperties": list(body.get("searchableProperties") or []),
            "secondaryDisplayProperties": list(body.get("secondaryDisplayProperties") or []),
            "associations": associations,
            "metaType": "PORTAL_SPECIFIC",
            "archived": False,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        return self._schema_json(name)

    def _schema_properties(self, properties: Any) -> list[dict[str, Any]]:
        if not isinstance(properties, list) or not properties:
            _reject("properties must be a non-empty list")
        seen: set[str] = set()
        for prop in properties:
            if not isinstance(prop, dict):
                _reject("each property must be an object")
            missing = [k for k in ("name", "label", "type", "fieldType") if not prop.get(k)]
            if missing:
                _reject(f"Property is missing required fields: {', '.join(missing)}")
            name, ptype, field_type = prop["name"], prop["type"], prop["fieldType"]
            if not PROPERTY_NAME.fullmatch(name):
                _reject(f"Property name {name!r} must be lowercase letters, digits, underscores")
            if ptype not in PROPERTY_TYPES or field_type not in FIELD_TYPES:
                _reject(f"Invalid type/fieldType combination: {ptype}/{field_type}")
            if ptype == "enumeration" and not prop.get("options"):
                _reject(f"Property {name!r} of type enumeration needs options")
            if name in seen:
                _reject(f"Property {name!r} is defined twice")
            seen.add(name)
        return properties

    def _schema_json(self, name: str) -> dict[str, Any]:
        return {**self.schemas[name], "properties": list(self.property_defs[name].values())}

    # -- custom objects: records ------------------------------------------------------------
    def add_object(
        self,
        object_type: str,
        properties: dict[str, str | None],
        created_at: datetime,
        updated_at: datetime | None = None,
    ) -> str:
        """Seed a record of any object type (e.g. ``touchpoints`` or its objectTypeId)."""
        with self._lock:
            kind = self._resolve(object_type)
            if kind is None:
                raise KeyError(f"no object type {object_type}: install its schema first")
            return self._add(kind.key, properties, created_at, updated_at).id

    def record(self, object_type: str, id: str) -> dict[str, str | None]:  # noqa: A002
        """Every defined property of a record of any object type (``None`` where unset)."""
        kind = self._resolve(object_type)
        if kind is None:
            raise KeyError(f"no object type {object_type}")
        return self._values(kind.key, id)

    @_endpoint("POST", r"/crm/v3/objects/(?P<type>[^/]+)/batch/upsert")
    def batch_upsert(self, req: Request) -> Response:
        """Create or update records by a unique property (<= 100): all valid, or a 400."""
        obj = self._object_type(req.params["type"])
        inputs = self._inputs(self._body(req), MAX_BATCH)
        writes: list[tuple[str, str, dict[str, str | None]]] = []
        problems: list[dict[str, Any]] = []
        for item in inputs:
            id_property = self._id_property(obj, item.get("idProperty"))
            key, values = item.get("id"), item.get("properties")
            if not isinstance(key, str) or not key:
                _reject(f"Each input needs an 'id': the value of its {id_property}")
            if not isinstance(values, dict):
                _reject("properties must be an object")
            checked = {n: self._check_value(obj, n, v) for n, v in values.items()}
            problems += [problem for _, problem in checked.values() if problem]
            writes.append((id_property, key, {n: v for n, (v, _) in checked.items()}))
        folded = [(p, k.lower() if p == "email" else k) for p, k, _ in writes]
        duplicates = sorted({k for (p, k) in folded if folded.count((p, k)) > 1})
        if duplicates:
            _reject(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
        if problems:
            _reject(f"Property values were not valid: {json.dumps(problems)}")
        required = (self.schemas.get(obj) or {}).get("requiredProperties", [])
        results = []
        for id_property, key, values in writes:
            record = next(iter(self._having(obj, id_property, key)), None)
            if record is None:
                unset = [n for n in required if n != id_property and not values.get(n)]
                if unset:
                    _reject(f"Required properties were not set: {unset}")
                record = self._add(obj, {**values, id_property: key}, utcnow(), None)
                created = True
            else:
                record.properties.update(values)
                self._reindex(obj, record)
                self._touch(obj, record)
                created = False
            rendered = self._render(obj, record, [*values, id_property])
            results.append({**rendered, "new": created})
        return self._batch(results, [])

    @_endpoint("POST", r"/crm/v3/objects/(?P<type>[^/]+)/batch/archive")
    def batch_archive(self, req: Request) -> Response:
        """Archive records by id (<= 100); ids that are unknown or archived already are
        ignored, as HubSpot does: always 204."""
        obj = self._object_type(req.params["type"])
        for item in self._inputs(self._body(req), MAX_BATCH):
            record = self._live(obj, str(item.get("id")))
            if record is not None:
                record.archived = True
                self._touch(obj, record)
        return Response(204)

    def _unique_clash(
        self, obj: str, record: CrmObject, values: dict[str, str | None]
    ) -> str | None:
        """The conflict message when ``values`` give a unique property another record's value."""
        for name, value in values.items():
            if not value or not self.property_defs[obj][name]["hasUniqueValue"]:
                continue
            other = next((r for r in self._having(obj, name, value) if r.id != record.id), None)
            if other is not None:
                return (
                    f"A {self.types[obj].singular} with {name}={value} already exists. "
                    f"Existing ID: {other.id}"
                )
        return None

    # -- pipelines and the account -----------------------------------------------------------
    @_endpoint("GET", r"/crm/v3/pipelines/(?P<type>[^/]+)")
    def list_pipelines(self, req: Request) -> Response:
        if req.params["type"] != "deals":
            _reject(f"Unable to infer object type from: {req.params['type']}")
        return Response(200, {"results": json.loads(json.dumps(self.pipelines))})

    @_endpoint("GET", r"/account-info/v3/details")
    def account_details(self, req: Request) -> Response:
        offset = datetime.now(zoneinfo.ZoneInfo(self.time_zone)).utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds()) // 60
        sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
        return Response(200, {
            "portalId": self.portal_id, "accountType": "STANDARD", "timeZone": self.time_zone,
            "companyCurrency": "USD", "additionalCurrencies": ["EUR", "GBP"],
            "utcOffset": f"{sign}{minutes // 60:02d}:{minutes % 60:02d}",
            "utcOffsetMilliseconds": int(offset.total_seconds() * 1000),
            "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1",
        })  # fmt: skip

    # -- associations (v4) ------------------------------------------------------------------
    @_endpoint("POST", r"/crm/v4/associations/(?P<from_type>[^/]+)/(?P<to_type>[^/]+)/batch/read")
    def read_associations(self, req: Request) -> Response:
        from_type, to_type = self._association_pair(req)
        inputs = self._inputs(self._body(req), MAX_ASSOCIATION_INPUTS)
        size = self.association_page_size
        results, errors = [], []
        for item in inputs:
            key = str(item.get("id"))
            start = int(item.get("after") or 0)
            targets = list(self._associated(from_type, key, to_type).items())
            if not targets:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": f"No {to_type} are associated with "
                        f"{from_type.rstrip('s')} {key}.",
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
                            {"category": self._category(from_type, to_type, t), "typeId": t,
                             "label": None}
                            for t in type_ids
                        ],
                    }
                    for target, type_ids in targets[start : start + size]
                ],
            }  # fmt: skip
            if start + size < len(targets):
                result["paging"] = {"next": {"after": str(start + size), "link": None}}
            results.append(result)
        return self._batch(results, errors)

    @_endpoint(
        "POST",
        r"/crm/v4/associations/(?P<from_type>[^/]+)/(?P<to_type>[^/]+)/batch/associate/default",
    )
    def associate_default(self, req: Request) -> Response:
        """Associate pairs with the default (unlabelled) type of the two object types."""
        from_type, to_type = self._association_pair(req)
        pairs = self._association_inputs(req, from_type, to_type)
        category, type_id = self.association_types[(from_type, to_type)]
        for from_id, to_id, _ in pairs:
            self._link(from_type, from_id, to_type, to_id)
        spec = {"associationCategory": category, "associationTypeId": type_id}
        results = [
            {"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": spec}
            for from_id, to_id, _ in pairs
        ]
        return self._batch(results, [])

    @_endpoint("POST", r"/crm/v4/associations/(?P<from_type>[^/]+)/(?P<to_type>[^/]+)/batch/create")
    def create_associations(self, req: Request) -> Response:
        """Associate pairs with the given ``types`` (each must be defined for the two types)."""
        from_type, to_type = self._association_pair(req)
        pairs = self._association_inputs(req, from_type, to_type)
        defined = self.association_types[(from_type, to_type)]
        for _, _, item in pairs:
            types = item.get("types")
            if not isinstance(types, list) or not types:
                _reject("Each input needs 'types': [{associationCategory, associationTypeId}]")
            for spec in types:
                given = (spec.get("associationCategory"), spec.get("associationTypeId"))
                if given != defined:
                    _reject(
                        f"{given[0]} association type {given[1]} is not defined from "
                        f"{self.types[from_type].object_type_id} to "
                        f"{self.types[to_type].object_type_id}"
                    )
        for from_id, to_id, _ in pairs:
            self._link(from_type, from_id, to_type, to_id)
        results = [
            {
                "fromObjectTypeId": self.types[from_type].object_type_id,
                "fromObjectId": int(from_id),
                "toObjectTypeId": self.types[to_type].object_type_id,
                "toObjectId": int(to_id),
                "labels": [],
            }
            for from_id, to_id, _ in pairs
        ]
        return Response(201, self._batch(results, []).body)

    @_endpoint(
        "POST", r"/crm/v4/associations/(?P<from_type>[^/]+)/(?P<to_type>[^/]+)/batch/archive"
    )
    def archive_associations(self, req: Request) -> Response:
        """Remove every association between each ``from`` and its ``to`` ids: 204."""
        from_type, to_type = self._association_pair(req)
        inputs = self._inputs(self._body(req), MAX_ASSOCIATION_WRITES)
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id"))
            targets = item.get("to")
            if not isinstance(targets, list):
                _reject("Each input needs 'from': {id} and 'to': [{id}, ...]")
            for target in targets:
                self._unlink(from_type, from_id, to_type, str((target or {}).get("id")))
        return Response(204)

    def _association_pair(self, req: Request) -> tuple[str, str]:
        from_type = self._object_type(req.params["from_type"])
        to_type = self._object_type(req.params["to_type"])
        if (from_type, to_type) not in self.association_types:
            _reject(f"Unable to infer object types from: {from_type}, {to_type}")
        return from_type, to_type

    def _association_inputs(
        self, req: Request, from_type: str, to_type: str
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """(from id, to id, input) of a create request; any unknown record fails them all."""
        inputs = self._inputs(self._body(req), MAX_ASSOCIATION_WRITES)
        pairs = []
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            to_id = str((item.get("to") or {}).get("id", ""))
            pairs.append((from_id, to_id, item))
        invalid = [
            (kind, key)
            for from_id, to_id, _ in pairs
            for kind, key in ((from_type, from_id), (to_type, to_id))
            if self._live(kind, key) is None
        ]
        if invalid:
            invalid = list(dict.fromkeys(invalid))
            raise _Rejected(
                _error(
                    400,
                    "One or more associations are invalid",
                    "VALIDATION_ERROR",
                    context={
                        "INVALID_OBJECT_IDS": [
                            f"{self.types[k].singular}={i} is not valid" for k, i in invalid
                        ],
                        "objectId": [i for _, i in invalid],
                        "objectType": [self.types[k].singular for k, _ in invalid],
                    },
                )
            )
        return pairs

    def _live(self, obj: str, key: str) -> CrmObject | None:
        record = self.objects[obj].get(key)
        return record if record is not None and not record.archived else None

    def _category(self, from_type: str, to_type: str, type_id: int) -> str:
        category, defined = self.association_types[(from_type, to_type)]
        return category if type_id == defined else "USER_DEFINED"

    def _associated(self, from_type: str, key: str, to_type: str) -> dict[str, list[int]]:
        """Live records of ``to_type`` associated with a live ``from_type`` record, with the
        association type ids, in the order they were associated."""
        if self._live(from_type, key) is None:
            return {}
        links = self.associations.get((from_type, to_type), {}).get(key, {})
        return {t: ids for t, ids in links.items() if self._live(to_type, t) is not None}

    def _link(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Associate two records with the default type, in both directions."""
        for (a, a_id), (b, b_id) in (
            ((from_type, from_id), (to_type, to_id)),
            ((to_type, to_id), (from_type, from_id)),
        ):
            type_id = self.association_types[(a, b)][1]
            ids = self.associations.setdefault((a, b), {}).setdefault(a_id, {}).setdefault(b_id, [])
            if type_id not in ids:
                ids.append(type_id)

    def _unlink(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self.associations.get((from_type, to_type), {}).get(from_id, {}).pop(to_id, None)
        self.associations.get((to_type, from_type), {}).get(to_id, {}).pop(from_id, None)
