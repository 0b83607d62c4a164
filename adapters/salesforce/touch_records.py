"""Touchpoint records in Salesforce: the ``CL_Touchpoint__c`` custom object of the metadata
package in ``deploy/salesforce`` (described in :mod:`.touchpoint_object`).

- the preflight describes the object (``GET sobjects/CL_Touchpoint__c/describe``) and says
  exactly what is missing: the object, its external id, a lookup, or edit access;
- upserts by the external id ``Touchpoint_Key__c``: sObject Collections
  (``PATCH composite/sobjects/CL_Touchpoint__c/Touchpoint_Key__c``, 200 records a call,
  allOrNone false, ``created`` per record) or, above ``bulk_threshold`` records, Bulk API 2.0
  upsert jobs; a record hangs under its Lead or Contact and, for an opportunity's touches, the
  Opportunity through the lookups ``Lead__c``, ``Contact__c``, ``Opportunity__c``;
- deletes by Id: ``DELETE composite/sobjects?ids=`` (200 a call) or Bulk API 2.0 delete jobs;
- reads by key with SOQL (the key is case-sensitive, as the field is).

References: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm
and https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/ .
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceResourceNotFound

from adapters.salesforce import touchpoint_object as tp
from adapters.salesforce.adapter import (
    BULK_JOB_ROWS,
    COLLECTION_SIZE,
    FIELD_TYPES,
    SalesforceCrm,
    _save_error,
    _text,
    _wire_value,
)
from adapters.salesforce.bulk import BulkRow, bulk_job
from adapters.salesforce.soql import in_chunks, soql_quote
from connector.kernel.batches import chunks
from connector.kernel.errors import ConfigError
from connector.kernel.records import (
    FieldSpec,
    TouchRecordDelete,
    TouchRecordResult,
    TouchRecordState,
    TouchRecordWrite,
    TouchSchema,
)

DEPLOY = (
    "deploy the metadata package that ships with closedloop (cd deploy/salesforce && sf project "
    f"deploy start --source-dir force-app) and assign the permission set {tp.PERMISSION_SET} to "
    "the integration user"
)
# Deleting a record that is already gone leaves the org as wanted.
GONE = ("ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY")
Report = Callable[[list[TouchRecordResult]], None]


def _lookup(obj: str) -> str:
    return f"{obj}__c"


class SalesforceTouchRecords:
    """The TouchRecordWriter of Salesforce: ``CL_Touchpoint__c`` through the CRM adapter's
    connection (its budget, retries and describe cache)."""

    object_name = tp.OBJECT_NAME

    def __init__(self, crm: SalesforceCrm) -> None:
        self.crm = crm
        self.links = (*crm.person_objects, crm.deal_object)

    # -- preflight ---------------------------------------------------------------------------
    def _describe(self) -> dict[str, dict[str, Any]]:
        self.crm._start()
        try:
            return self.crm._describe(tp.OBJECT_NAME)
        except ConfigError as exc:
            if isinstance(exc.__cause__, SalesforceResourceNotFound):
                raise ConfigError(
                    f"Salesforce has no {tp.OBJECT_NAME} object the integration user can see: "
                    + DEPLOY
                ) from None
            raise

    def schema(self, create: bool) -> TouchSchema:
        """Describe ``CL_Touchpoint__c``; a missing key, lookup or edit access is an error that
        names each one (closedloop deploys no metadata: ``create`` changes nothing here)."""
        described = self._describe()
        missing, read_only = [], []
        key = described.get(tp.EXTERNAL_ID)
        if key is None or not key.get("externalId"):
            missing.append(f"{tp.EXTERNAL_ID} (Text(80), External ID, unique, case-sensitive)")
        for obj in self.links:
            spec = described.get(_lookup(obj))
            if spec is None or obj not in (spec.get("referenceTo") or []):
                missing.append(f"{_lookup(obj)} (lookup to {obj})")
        for name in (tp.EXTERNAL_ID, *map(_lookup, self.links)):
            spec = described.get(name)
            if spec is not None and not (spec.get("createable") and spec.get("updateable")):
                read_only.append(name)
        problems = []
        if missing:
            problems.append(f"lacks {', '.join(missing)}")
        if read_only:
            problems.append(f"is read-only for the integration user: {', '.join(read_only)}")
        if problems:
            raise ConfigError(f"Salesforce {tp.OBJECT_NAME} " + "; ".join(problems) + ": " + DEPLOY)
        own = {tp.EXTERNAL_ID, *map(_lookup, self.links)}
        fields = {
            name: FieldSpec(
                name=name,
                type=FIELD_TYPES.get(raw["type"], "string"),
                updateable=bool(raw.get("createable") and raw.get("updateable")),
                length=raw.get("length") or None,
                label=raw.get("label", ""),
            )
            for name, raw in described.items()
            if raw.get("custom") and name not in own
        }
        return TouchSchema(tp.OBJECT_NAME, fields, self.links)

    def create_fields(self, fields: Sequence[FieldSpec], group: str) -> None:
        names = ", ".join(f"{f.name} ({f.type})" for f in fields)
        raise ConfigError(
            f"Salesforce {tp.OBJECT_NAME} lacks the fields {names}. closedloop does not create "
            f"Salesforce fields: ask an admin to add them (Setup > Object Manager > "
            f"{tp.LABEL} > Fields & Relationships, or in deploy/salesforce) with edit access in "
            f"the permission set {tp.PERMISSION_SET}, then run again."
        )

    # -- writes ------------------------------------------------------------------------------
    def upsert(
        self, records: Sequence[TouchRecordWrite], on_batch: Report | None = None
    ) -> list[TouchRecordResult]:
        """Upsert on ``Touchpoint_Key__c``; results in input order, each batch to ``on_batch``."""
        described = self._describe()
        report = on_batch or (lambda results: None)
        results: dict[str, TouchRecordResult] = {}
        prepared: list[tuple[str, dict[str, Any]]] = []
        for record in records:
            try:
                values = {
                    name: _wire_value(described.get(name), name, value)
                    for name, value in record.values.items()
                }
            except ValueError as exc:
                results[record.key] = TouchRecordResult(record.key, False, error=str(exc))
                report([results[record.key]])
                continue
            values.update((_lookup(obj), record.links.get(obj)) for obj in self.links)
            prepared.append((record.key, values))
        if len(prepared) > self.crm.settings.bulk_threshold:
            for job_rows in chunks(prepared, BULK_JOB_ROWS):
                rows = bulk_job(
                    self.crm._conn, tp.OBJECT_NAME, Operation.upsert, job_rows, tp.EXTERNAL_ID
                )
                self._settle(results, rows, report)
        else:
            for chunk in chunks(prepared, COLLECTION_SIZE):
                self._settle(results, self._collection_upsert(chunk), report)
        return [results[r.key] for r in records]

    def _collection_upsert(self, chunk: list[tuple[str, dict[str, Any]]]) -> list[BulkRow]:
        payload = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": tp.OBJECT_NAME}, tp.EXTERNAL_ID: key, **values}
                for key, values in chunk
            ],
        }
        path = f"composite/sobjects/{tp.OBJECT_NAME}/{tp.EXTERNAL_ID}"
        answer = self.crm._call(
            f"upsert of {len(chunk)} {tp.OBJECT_NAME} records",
            lambda sf: sf.restful(path, method="PATCH", json=payload),
        )
        return [
            BulkRow(key, bool(item.get("success")), _save_error(item), item.get("id"))
            for (key, _), item in zip(chunk, answer or [], strict=True)
        ]

    def delete(
        self, records: Sequence[TouchRecordDelete], on_batch: Report | None = None
    ) -> list[TouchRecordResult]:
        """Delete by Id (a record already gone counts as deleted)."""
        report = on_batch or (lambda results: None)
        results: dict[str, TouchRecordResult] = {}
        never_created = [BulkRow(r.key, True) for r in records if not r.crm_id]
        if never_created:  # nothing to delete
            self._settle(results, never_created, report)
        by_id = {r.crm_id: r.key for r in records if r.crm_id}
        ids = list(by_id)
        if len(ids) > self.crm.settings.bulk_threshold:
            for job_ids in chunks(ids, BULK_JOB_ROWS):
                rows = bulk_job(
                    self.crm._conn, tp.OBJECT_NAME, Operation.delete, [(i, {}) for i in job_ids]
                )
                self._settle(results, [_gone_ok(r, by_id[r.key]) for r in rows], report)
        else:
            for chunk in chunks(ids, COLLECTION_SIZE):
                answer = self._collection_delete(chunk)
                rows = [
                    _gone_ok(BulkRow(rid, bool(item.get("success")), _save_error(item)), key)
                    for rid, item in zip(chunk, answer or [], strict=True)
                    for key in [by_id[rid]]
                ]
                self._settle(results, rows, report)
        return [results[r.key] for r in records]

    def _collection_delete(self, ids: list[str]) -> Any:
        params = {"ids": ",".join(ids), "allOrNone": "false"}
        return self.crm._call(
            f"delete of {len(ids)} {tp.OBJECT_NAME} records",
            lambda sf: sf.restful("composite/sobjects", method="DELETE", params=params),
        )

    @staticmethod
    def _settle(results: dict[str, TouchRecordResult], rows: list[BulkRow], report: Report) -> None:
        batch = [TouchRecordResult(r.key, r.ok, r.record_id, r.error) for r in rows]
        results.update((r.key, r) for r in batch)
        report(batch)

    # -- reads -------------------------------------------------------------------------------
    def read(self, keys: Sequence[str], fields: Sequence[str]) -> dict[str, TouchRecordState]:
        described = self._describe()
        names = [f for f in dict.fromkeys(fields) if f in described]
        columns = ["Id", tp.EXTERNAL_ID, *names, *map(_lookup, self.links)]
        head = f"SELECT {', '.join(columns)} FROM {tp.OBJECT_NAME} WHERE {tp.EXTERNAL_ID} IN ("
        found: dict[str, TouchRecordState] = {}
        for chunk in in_chunks(list(dict.fromkeys(keys)), head + ")"):
            soql = head + ", ".join(soql_quote(k) for k in chunk) + ")"
            for row in self.crm._query(soql):
                found[row[tp.EXTERNAL_ID]] = TouchRecordState(
                    crm_id=row["Id"],
                    values={f: _text(row.get(f)) for f in fields},
                    links={obj: row.get(_lookup(obj)) for obj in self.links},
                )
        return found


def _gone_ok(row: BulkRow, key: str) -> BulkRow:
    """A delete's outcome under the record's key; "already deleted" is a success."""
    if not row.ok and row.error.startswith(GONE):
        return BulkRow(key, True, record_id=row.key)
    return BulkRow(key, row.ok, row.error, row.key)
