"""Salesforce CRM adapter (simple-salesforce 1.12.10 over the REST API).

Reads, with SOQL through ``query/`` and paged by ``nextRecordsUrl``:
  - ``Lead`` and ``Contact`` (people; a converted lead points to its contact via ``merged_into``),
    incrementally by ``SystemModstamp``;
  - ``Opportunity`` (deals) with buyers from ``OpportunityContactRole`` (primary or all roles).
Writes field values on people:
  - sObject Collections (``PATCH composite/sobjects``, 200 records a call, allOrNone false);
  - above ``bulk_threshold`` records, Bulk API 2.0 ``update`` ingest jobs (CSV, polled here).
Also: ``sobjects/{type}/describe`` for the preflight and ``limits/`` for the API budget.

References: REST https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/ ,
Bulk API 2.0 https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/ ,
SOQL https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/ .
simple-salesforce builds every URL as ``https://{instance}``; for the emulator (``allow_http``)
the session rewrites them to http on 127.0.0.1 only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from adapters.salesforce.bulk import bulk_update
from adapters.salesforce.connection import SalesforceConnection
from adapters.salesforce.org import dated_rates, org_time_zone
from adapters.salesforce.settings import SalesforceSettings
from adapters.salesforce.soql import in_chunks, soql_datetime, soql_quote
from connector.kernel.batches import chunks
from connector.kernel.errors import ConfigError
from connector.kernel.records import (
    CrmDeal,
    CrmRecord,
    CurrencyRate,
    FieldSpec,
    RecordUpdate,
    WriteResult,
)
from connector.kernel.timeutil import day_start, iso_z, parse_datetime, zone

COLLECTION_SIZE = 200  # sObject Collections maximum
BULK_JOB_ROWS = 100_000  # rows per Bulk API 2.0 job (well under its 150 MB upload limit)
ROLE_BATCH = 200  # opportunities whose contact roles are read in one query
FIELD_TYPES = {
    "double": "number", "currency": "number", "percent": "number", "int": "number",
    "long": "number", "date": "date", "datetime": "datetime", "boolean": "bool",
    "picklist": "enumeration", "multipicklist": "enumeration",
}  # fmt: skip
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _text(value: Any) -> str | None:
    """A field value as the core stores it (strings; booleans lower-case, numbers as printed)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _save_error(item: dict[str, Any]) -> str:
    return "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in item.get("errors") or [])


class SalesforceCrm:
    """closedloop's CrmAdapter for Salesforce: people are Leads and Contacts."""

    Settings: ClassVar[type[SalesforceSettings]] = SalesforceSettings
    max_batch: ClassVar[int] = COLLECTION_SIZE
    modified_resolution: ClassVar[timedelta] = timedelta(seconds=1)

    def __init__(self, settings: SalesforceSettings) -> None:
        self.settings = settings
        self._conn = SalesforceConnection(settings)
        self._call = self._conn.call
        self._query = self._conn.query
        self._start = self._conn.start
        self._described: dict[str, dict[str, dict[str, Any]]] = {}
        self._time_zone = settings.time_zone

    @property
    def person_objects(self) -> tuple[str, ...]:
        return tuple(self.settings.person_objects)

    @property
    def deal_object(self) -> str:
        return "Opportunity"

    def api_calls(self) -> int:
        """HTTP requests this adapter sent (logins included)."""
        return self._conn.api_calls()

    def close(self) -> None:
        """Close the HTTP connections (call when the run is done)."""
        self._conn.close()

    def __enter__(self) -> SalesforceCrm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- describe --------------------------------------------------------------------------
    def _describe(self, obj: str) -> dict[str, dict[str, Any]]:
        if obj not in self._described:
            if not _NAME.match(obj):
                raise ConfigError(f"{obj!r} is not a Salesforce object name")
            self._start()
            body = self._call(f"describe {obj}", lambda sf: getattr(sf, obj).describe())
            self._described[obj] = {f["name"]: f for f in body["fields"]}
        return self._described[obj]

    def currency_rates(self) -> list[CurrencyRate]:
        """The org's dated conversion rates (advanced currency management), if it has them."""
        return dated_rates(self._conn) if "CurrencyIsoCode" in self._describe("Opportunity") else []

    def time_zone(self) -> str:
        """The org's default time zone, unless the settings name one."""
        if self._time_zone is None:
            self._start()
            self._time_zone = org_time_zone(self._conn)
        return self._time_zone

    def _field_name(self, obj: str, name: str) -> str | None:
        """The describe's spelling of ``name`` (field names are case-insensitive)."""
        described = self._describe(obj)
        if name in described:
            return name
        return next((n for n in described if n.lower() == name.lower()), None)

    def describe_fields(self, obj: str) -> dict[str, FieldSpec]:
        specs = {}
        for name, raw in self._describe(obj).items():
            active = tuple(p["value"] for p in raw.get("picklistValues") or [] if p.get("active"))
            specs[name] = FieldSpec(
                name=name,
                type=FIELD_TYPES.get(raw["type"], "string"),
                updateable=bool(raw.get("updateable")),
                length=raw.get("length") or None,
                picklist=active if raw["type"] in {"picklist", "multipicklist"} else None,
                restricted=bool(raw.get("restrictedPicklist")),
                label=raw.get("label", ""),
            )
        return specs

    def create_fields(self, obj: str, fields: Sequence[FieldSpec], group: str) -> None:
        names = ", ".join(f"{f.name} ({f.type})" for f in fields)
        raise ConfigError(
            f"Salesforce {obj} lacks the fields {names}. closedloop does not create Salesforce "
            "fields: ask an admin to create them (Setup > Object Manager > "
            f"{obj} > Fields & Relationships, or a metadata deploy) and give the integration "
            "user edit access, then run again."
        )

    # -- reads -----------------------------------------------------------------------------
    def contacts(self, since: datetime | None, properties: Sequence[str]) -> Iterator[CrmRecord]:
        self._start()
        for obj in self.person_objects:
            names = {p: self._field_name(obj, p) for p in properties}
            extra = ["IsConverted", "ConvertedContactId"] if obj == "Lead" else ["AccountId"]
            fields = list(
                dict.fromkeys(
                    [
                        "Id",
                        "CreatedDate",
                        "SystemModstamp",
                        *extra,
                        *(n for n in names.values() if n),
                    ]
                )
            )
            where = f" WHERE SystemModstamp >= {soql_datetime(since)}" if since else ""
            soql = f"SELECT {', '.join(fields)} FROM {obj}{where} ORDER BY SystemModstamp, Id"
            for row in self._query(soql):
                converted = obj == "Lead" and row.get("IsConverted")
                yield CrmRecord(
                    object=obj,
                    crm_id=row["Id"],
                    created_at=parse_datetime(row["CreatedDate"]),
                    updated_at=parse_datetime(row["SystemModstamp"]),
                    properties={p: _text(row.get(n)) if n else None for p, n in names.items()},
                    account_id=row.get("AccountId"),
                    merged_into=row.get("ConvertedContactId") if converted else None,
                )

    def deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        self._start()
        tz = zone(self.time_zone())
        fields = [
            "Id",
            "Name",
            "Amount",
            "StageName",
            "IsWon",
            "IsClosed",
            "CloseDate",
            "CreatedDate",
            "SystemModstamp",
            "AccountId",
        ]
        if "CurrencyIsoCode" in self._describe("Opportunity"):
            fields.append("CurrencyIsoCode")
        where = f" WHERE SystemModstamp >= {soql_datetime(since)}" if since else ""
        soql = f"SELECT {', '.join(fields)} FROM Opportunity{where} ORDER BY SystemModstamp, Id"
        batch: list[dict[str, Any]] = []
        for row in self._query(soql):
            batch.append(row)
            if len(batch) >= ROLE_BATCH:
                yield from self._with_buyers(batch, tz)
                batch = []
        yield from self._with_buyers(batch, tz)

    def _with_buyers(self, rows: list[dict[str, Any]], tz: ZoneInfo) -> Iterator[CrmDeal]:
        buyers = self._contact_roles([row["Id"] for row in rows]) if rows else {}
        # StageName's picklist: each value's label and place (the pipeline's order)
        picklist = self._describe("Opportunity")["StageName"].get("picklistValues") or []
        stages = {p["value"]: (p.get("label") or p["value"], n) for n, p in enumerate(picklist)}
        for row in rows:
            closed = bool(row["IsClosed"]) and row.get("CloseDate")
            close_date = date.fromisoformat(row["CloseDate"]) if closed else None
            stage = row.get("StageName") or ""
            label, order = stages.get(stage, (stage, len(stages)))
            yield CrmDeal(
                object="Opportunity",
                crm_id=row["Id"],
                name=row.get("Name") or "",
                amount=float(row["Amount"]) if row.get("Amount") is not None else None,
                currency=row.get("CurrencyIsoCode"),
                stage=row.get("StageName") or "",
                is_won=bool(row["IsWon"]),
                is_closed=bool(row["IsClosed"]),
                created_at=parse_datetime(row["CreatedDate"]),
                updated_at=parse_datetime(row["SystemModstamp"]),
                closed_at=day_start(close_date, tz) if close_date else None,
                contact_ids=tuple(buyers.get(row["Id"], ())),
                account_id=row.get("AccountId"),
                close_date=close_date,
                stage_label=label,
                stage_order=order,
            )

    def _contact_roles(self, opportunity_ids: list[str]) -> dict[str, list[str]]:
        """Opportunity Id -> contact Ids (primary first), per the contact_roles setting."""
        primary_only = self.settings.contact_roles == "primary"
        head = "SELECT OpportunityId, ContactId, IsPrimary FROM OpportunityContactRole WHERE "
        tail = (" AND IsPrimary = TRUE" if primary_only else "") + " ORDER BY OpportunityId, Id"
        roles: dict[str, list[tuple[bool, str]]] = {}
        for chunk in in_chunks(opportunity_ids, head + "OpportunityId IN ()" + tail):
            ids = ", ".join(soql_quote(i) for i in chunk)
            for row in self._query(f"{head}OpportunityId IN ({ids}){tail}"):
                if row.get("ContactId"):
                    roles.setdefault(row["OpportunityId"], []).append(
                        (not row["IsPrimary"], row["ContactId"])
                    )
        return {
            opp: list(dict.fromkeys(contact for _, contact in sorted(found, key=lambda r: r[0])))
            for opp, found in roles.items()
        }

    def read_values(
        self, obj: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        self._start()
        names = {f: self._field_name(obj, f) for f in fields}
        columns = list(dict.fromkeys(["Id", *(n for n in names.values() if n)]))
        head = f"SELECT {', '.join(columns)} FROM {obj} WHERE Id IN ("
        by_prefix = {i[:15]: i for i in ids}  # the API answers with 18-character Ids
        out: dict[str, dict[str, str | None]] = {}
        for chunk in in_chunks(list(dict.fromkeys(ids)), head + ")"):
            soql = head + ", ".join(soql_quote(i) for i in chunk) + ")"
            for row in self._query(soql):
                key = by_prefix.get(row["Id"][:15], row["Id"])
                out[key] = {f: _text(row.get(n)) if n else None for f, n in names.items()}
        return out

    def modified_since(self, obj: str, since: datetime) -> set[str]:
        """Ids of ``obj`` records changed (SystemModstamp) at or after ``since``; SOQL compares
        whole seconds, the milliseconds are compared here."""
        self._start()
        where = f"SystemModstamp >= {soql_datetime(since)}"
        rows = self._query(f"SELECT Id, SystemModstamp FROM {obj} WHERE {where}")
        return {row["Id"] for row in rows if parse_datetime(row["SystemModstamp"]) >= since}

    def count_modified(self, obj: str, start: datetime, end: datetime) -> int:
        """How many ``obj`` records were last changed (SystemModstamp) in [start, end), whole
        seconds: one ``COUNT()`` query."""
        self._start()
        soql = (
            f"SELECT COUNT() FROM {obj} WHERE SystemModstamp >= {soql_datetime(start)} "
            f"AND SystemModstamp < {soql_datetime(end)}"
        )
        page = self._conn.call("count", lambda sf: sf.query(soql))
        return int(page["totalSize"])

    # -- writes ----------------------------------------------------------------------------
    def write(
        self,
        obj: str,
        updates: Sequence[RecordUpdate],
        on_batch: Callable[[list[WriteResult]], None] | None = None,
    ) -> list[WriteResult]:
        """Write the updates; per-record results in input order; ``on_batch`` after each call."""
        if not updates:
            return []
        self._start()
        described = self._describe(obj)
        canonical = {
            name: self._field_name(obj, name) or name
            for update in updates
            for name in update.values
        }
        report = on_batch or (lambda results: None)
        results: dict[str, WriteResult] = {}
        prepared: list[tuple[str, dict[str, Any]]] = []
        rejected: list[WriteResult] = []
        for update in updates:
            try:
                prepared.append(
                    (
                        update.crm_id,
                        {
                            canonical[name]: _wire_value(
                                described.get(canonical[name]), name, value
                            )
                            for name, value in update.values.items()
                        },
                    )
                )
            except ValueError as exc:
                rejected.append(WriteResult(update.crm_id, False, str(exc)))
        if rejected:
            results.update((r.crm_id, r) for r in rejected)
            report(rejected)
        if len(prepared) > self.settings.bulk_threshold:
            for job_rows in chunks(prepared, BULK_JOB_ROWS):
                batch = bulk_update(self._conn, obj, job_rows)
                results.update((r.crm_id, r) for r in batch)
                report(batch)
        else:
            for chunk in chunks(prepared, COLLECTION_SIZE):
                batch = self._collection_update(obj, chunk)
                results.update((r.crm_id, r) for r in batch)
                report(batch)
        return [results[u.crm_id] for u in dict((u.crm_id, u) for u in updates).values()]

    def _collection_update(
        self, obj: str, chunk: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[WriteResult]:
        payload = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": obj}, "id": rid, **values} for rid, values in chunk
            ],
        }
        answer = self._call(
            f"update of {len(chunk)} {obj} records",
            lambda sf: sf.restful("composite/sobjects", method="PATCH", json=payload),
        )
        return [
            WriteResult(rid, bool(item.get("success")), _save_error(item))
            for (rid, _), item in zip(chunk, answer or [], strict=True)
        ]


def _wire_value(spec: dict[str, Any] | None, name: str, value: str | None) -> Any:
    """The JSON value Salesforce expects for the field (numbers as numbers; '' clears)."""
    if value is None or value == "":
        return None
    kind = spec["type"] if spec else "string"
    if kind in {"double", "currency", "percent", "int", "long"}:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{name}: {value!r} is not a finite number")
        if kind in {"int", "long"}:
            if not number.is_integer():
                raise ValueError(f"{name}: {value!r} is not a whole number")
            return int(number)
        return number
    if kind == "boolean":
        lowered = value.strip().lower()
        if lowered not in {"true", "false"}:
            raise ValueError(f"{name}: {value!r} is not true/false")
        return lowered == "true"
    try:
        if kind == "date":
            return (
                date.fromisoformat(value) if len(value) == 10 else parse_datetime(value).date()
            ).isoformat()
        if kind == "datetime":
            return iso_z(parse_datetime(value))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a {kind}") from None
    return value
