"""Touchpoint records in HubSpot: the custom object ``touchpoints`` (:mod:`.touchpoint_schema`).

- the schema: ``GET /crm/v3/schemas`` finds it; on the first sync ``POST /crm/v3/schemas``
  creates it. A portal without custom objects (below Enterprise) answers 403: that is
  :class:`Unavailable`, and closedloop skips touchpoint records with that message;
- records: ``POST /crm/v3/objects/{objectTypeId}/batch/upsert`` by the unique property
  ``touchpoint_key`` (100 a call; one invalid input fails the call), ``.../batch/archive``
  (100 a call) and ``.../batch/read`` by the unique property;
- links: v4 associations to contacts and deals with the schema's association types,
  ``POST /crm/v4/associations/{from}/{to}/batch/create`` and ``.../batch/archive`` (2,000 pairs
  a call, so one call per 2,000 records and object), read back with ``.../batch/read``.

Every call goes through the CRM adapter's limiter, retries and error table.
References: https://developers.hubspot.com/docs/api/crm/crm-custom-objects and
https://developers.hubspot.com/docs/api/crm/associations .
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from typing import Any

from adapters.hubspot import touchpoint_schema as tp
from adapters.hubspot.adapter import ASSOCIATION_BATCH, HubSpotCrm
from adapters.hubspot.properties import MAX_STRING_LENGTH, field_spec
from connector.kernel.batches import chunks
from connector.kernel.errors import ConfigError, RecordError, Unavailable
from connector.kernel.records import (
    FieldSpec,
    TouchRecordDelete,
    TouchRecordResult,
    TouchRecordState,
    TouchRecordWrite,
    TouchSchema,
)

RECORD_BATCH = 100  # batch upsert / archive / read
LINK_BATCH = 2000  # v4 association batch/create and batch/archive
LINKS = {"contacts": "0-1", "deals": "0-3"}  # object -> objectTypeId
NO_CUSTOM_OBJECTS = (
    "HubSpot refused the custom object schemas ({error}). Touchpoint records need custom "
    "objects: an Enterprise subscription, and a private app with the crm.schemas.custom.read/"
    "write and crm.objects.custom.read/write scopes. Touchpoint records are skipped."
)
Report = Callable[[list[TouchRecordResult]], None]


def _status(error: Exception) -> int | None:
    status = getattr(error.__cause__, "status", None)
    return status if isinstance(status, int) else None


def _body(error: Exception) -> dict[str, Any]:
    try:
        body = json.loads(getattr(error.__cause__, "body", b"") or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class HubSpotTouchRecords:
    """The TouchRecordWriter of HubSpot: the ``touchpoints`` custom object."""

    object_name = tp.OBJECT_NAME
    links = tuple(LINKS)

    def __init__(self, crm: HubSpotCrm) -> None:
        self.crm = crm
        self._type_id = ""
        self._link_types: dict[str, int] = {}  # object -> association type from touchpoints

    # -- the schema --------------------------------------------------------------------------
    def _schemas(self, action: str, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return self.crm._call(action, method, *args)
        except ConfigError as exc:
            if _status(exc) == 403:
                message = _body(exc).get("message", exc)
                raise Unavailable(NO_CUSTOM_OBJECTS.format(error=message)) from None
            raise

    def _find(self) -> Any:
        page = self._schemas("read custom object schemas", self.crm._schemas.get_all_with_http_info)
        return next((s for s in page.results or () if s.name == tp.OBJECT_NAME), None)

    def schema(self, create: bool) -> TouchSchema:
        """The ``touchpoints`` object, created first if absent and ``create``; without
        ``create`` an absent object is described as it will be created (``pending``)."""
        found = self._find()
        if found is None and not create:
            specs = {p["name"]: _spec(p) for p in tp.SCHEMA["properties"]}
            specs.pop(tp.UNIQUE_PROPERTY)
            return TouchSchema(tp.OBJECT_NAME, specs, self.links, pending=True)
        if found is None:
            try:
                found = self._schemas(
                    "create the touchpoints object",
                    self.crm._schemas.create_with_http_info,
                    copy.deepcopy(tp.SCHEMA),
                )
            except RecordError as exc:  # created meanwhile by another process: use it
                if _status(exc) != 409 or (found := self._find()) is None:
                    raise
        self._type_id = str(found.object_type_id)
        self._link_types = {
            obj: int(a.id)
            for a in found.associations or ()
            for obj, type_id in LINKS.items()
            if a.to_object_type_id == type_id and a.from_object_type_id == self._type_id
        }
        properties = {p.name: p for p in found.properties or ()}
        key = properties.get(tp.UNIQUE_PROPERTY)
        missing = [] if key is not None and key.has_unique_value else [
            f"the unique property {tp.UNIQUE_PROPERTY}"
        ]  # fmt: skip
        missing += [f"an association to {o}" for o in LINKS if o not in self._link_types]
        if missing:
            raise ConfigError(
                f"HubSpot's {tp.OBJECT_NAME} object ({self._type_id}) lacks "
                + ", ".join(missing)
                + ": it was not created by closedloop; delete it in Settings > Data Management "
                "> Objects (or rename it) and closedloop creates its own on the next sync"
            )
        fields = {n: field_spec(p) for n, p in properties.items() if n != tp.UNIQUE_PROPERTY}
        return TouchSchema(tp.OBJECT_NAME, fields, self.links)

    def create_fields(self, fields: Sequence[FieldSpec], group: str) -> None:
        self._ensure()
        self.crm.create_fields(self._type_id, fields, group)

    def _ensure(self) -> None:
        if not self._type_id:
            self.schema(create=True)

    # -- writes ------------------------------------------------------------------------------
    def upsert(
        self, records: Sequence[TouchRecordWrite], on_batch: Report | None = None
    ) -> list[TouchRecordResult]:
        """Upsert in 100s, and associate in 2,000s per linked object, pairs gathered across
        upsert batches (the fewest calls); a record is reported once its links are made."""
        self._ensure()
        report = on_batch or (lambda results: None)
        outcome: dict[str, TouchRecordResult] = {}
        waiting: dict[str, set[tuple[str, str]]] = {}  # key -> its (action, object) to send
        queues: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for chunk in chunks(records, RECORD_BATCH):
            created: set[str] = set()
            outcome.update(self._upsert_batch(chunk, created))
            ready = []
            for r in chunk:
                crm_id = outcome[r.key].crm_id
                old = {} if r.key in created else r.old_links  # created anew: no links yet
                for obj in self.links:
                    if crm_id is None or r.links.get(obj) == old.get(obj):
                        continue
                    for action, other in (("archive", old.get(obj)), ("create", r.links.get(obj))):
                        if other:
                            queues.setdefault((action, obj), []).append((r.key, crm_id, other))
                            waiting.setdefault(r.key, set()).add((action, obj))
                if r.key not in waiting:
                    ready.append(r.key)
            ready += self._flush(queues, waiting, outcome, full_only=True)
            if ready:
                report([outcome[k] for k in ready])
        rest = self._flush(queues, waiting, outcome, full_only=False)
        if rest:
            report([outcome[k] for k in rest])
        return [outcome[r.key] for r in records]

    def _upsert_batch(
        self, chunk: list[TouchRecordWrite], created: set[str]
    ) -> dict[str, TouchRecordResult]:
        inputs = [
            {
                "idProperty": tp.UNIQUE_PROPERTY,
                "id": r.key,
                "properties": {k: "" if v is None else v for k, v in r.values.items()},
            }
            for r in chunk
        ]
        try:
            page = self.crm._call(
                f"upsert {len(chunk)} touchpoints",
                self.crm._batch.upsert_with_http_info,
                self._type_id,
                {"inputs": inputs},
            )
        except RecordError as rejected:  # one invalid input fails the whole call
            return {r.key: TouchRecordResult(r.key, False, error=str(rejected)) for r in chunk}
        found: dict[str | None, str] = {}
        for item in page.results or ():
            key = (item.properties or {}).get(tp.UNIQUE_PROPERTY)
            found[key] = str(item.id)
            if item.new:
                created.add(str(key))
        return {
            r.key: TouchRecordResult(r.key, True, found[r.key])
            if r.key in found
            else TouchRecordResult(r.key, False, error="HubSpot did not return the record")
            for r in chunk
        }

    def _flush(
        self,
        queues: dict[tuple[str, str], list[tuple[str, str, str]]],
        waiting: dict[str, set[tuple[str, str]]],
        outcome: dict[str, TouchRecordResult],
        full_only: bool,
    ) -> list[str]:
        """Send the association batches that are full (every one, when not ``full_only``;
        stale links are removed first); the keys whose links are now all made."""
        done = []
        for action, obj in sorted(queues):  # "archive" before "create"
            pairs = queues[(action, obj)]
            while pairs and (len(pairs) >= LINK_BATCH or not full_only):
                batch, pairs[:] = pairs[:LINK_BATCH], pairs[LINK_BATCH:]
                send = self._unlink if action == "archive" else self._associate
                failed = send(obj, batch)
                for key, _, _ in batch:
                    if key in failed:
                        outcome[key] = TouchRecordResult(
                            key, False, outcome[key].crm_id, failed[key]
                        )
                    waiting[key].discard((action, obj))
                    if not waiting[key]:
                        del waiting[key]
                        done.append(key)
        return done

    def _unlink(self, obj: str, pairs: list[tuple[str, str, str]]) -> dict[str, str]:
        """Remove the (touchpoint, ``obj``) associations closedloop made that no longer hold."""
        try:
            self.crm._call(
                f"remove {len(pairs)} touchpoint-{obj} associations",
                self.crm._associations.archive_with_http_info,
                self._type_id,
                obj,
                {"inputs": [{"from": {"id": t}, "to": [{"id": o}]} for _, t, o in pairs]},
            )
        except RecordError as exc:
            return {k: str(exc) for k, _, _ in pairs}
        return {}

    def _associate(self, obj: str, pairs: list[tuple[str, str, str]]) -> dict[str, str]:
        """Create (touchpoint, ``obj``) associations; returns the keys that failed, with why.
        A record HubSpot says is invalid (deleted meanwhile) fails alone: the rest is retried."""
        kind = {"associationCategory": "USER_DEFINED", "associationTypeId": self._link_types[obj]}
        inputs = [{"from": {"id": t}, "to": {"id": o}, "types": [kind]} for _, t, o in pairs]
        try:
            self.crm._call(
                f"associate {len(pairs)} touchpoints with {obj}",
                self.crm._associations.create_with_http_info,
                self._type_id,
                obj,
                {"inputs": inputs},
            )
            return {}
        except RecordError as exc:
            invalid = {str(i) for i in (_body(exc).get("context") or {}).get("objectId") or []}
            bad = {k: t in invalid or o in invalid for k, t, o in pairs}
            if not invalid or all(bad.values()):
                return {k: str(exc) for k, _, _ in pairs}
            failed = {k: f"{exc} ({obj} record no longer in HubSpot)" for k, b in bad.items() if b}
            return failed | self._associate(obj, [p for p in pairs if not bad[p[0]]])

    def delete(
        self, records: Sequence[TouchRecordDelete], on_batch: Report | None = None
    ) -> list[TouchRecordResult]:
        """Archive by id, 100 a call (HubSpot ignores records already archived)."""
        self._ensure()
        report = on_batch or (lambda results: None)
        results: list[TouchRecordResult] = []
        for chunk in chunks(records, RECORD_BATCH):
            ids = [{"id": r.crm_id} for r in chunk if r.crm_id]
            try:
                if ids:
                    self.crm._call(
                        f"archive {len(ids)} touchpoints",
                        self.crm._batch.archive_with_http_info,
                        self._type_id,
                        {"inputs": ids},
                    )
                batch = [TouchRecordResult(r.key, True, r.crm_id) for r in chunk]
            except RecordError as rejected:
                batch = [TouchRecordResult(r.key, False, r.crm_id, str(rejected)) for r in chunk]
            results.extend(batch)
            report(batch)
        return results

    # -- reads -------------------------------------------------------------------------------
    def read(self, keys: Sequence[str], fields: Sequence[str]) -> dict[str, TouchRecordState]:
        self._ensure()
        wanted = list(dict.fromkeys([*fields, tp.UNIQUE_PROPERTY]))
        records: dict[str, tuple[str, dict[str, str | None]]] = {}
        for chunk in chunks(dict.fromkeys(keys), RECORD_BATCH):
            page = self.crm._call(
                "read touchpoints",
                self.crm._batch.read_with_http_info,
                self._type_id,
                {
                    "idProperty": tp.UNIQUE_PROPERTY,
                    "inputs": [{"id": k} for k in chunk],
                    "properties": wanted,
                    "propertiesWithHistory": [],
                },
                archived=False,
            )
            for item in page.results or ():
                values = item.properties or {}
                records[str(values.get(tp.UNIQUE_PROPERTY))] = (str(item.id), values)
        linked = {obj: self._linked([i for i, _ in records.values()], obj) for obj in self.links}
        return {
            key: TouchRecordState(
                crm_id,
                {f: values.get(f) or None for f in fields},
                {obj: linked[obj].get(crm_id) for obj in self.links},
            )  # fmt: skip
            for key, (crm_id, values) in records.items()
        }

    def _linked(self, ids: list[str], obj: str) -> dict[str, str]:
        """The ``obj`` record each touchpoint is associated with (the first, if several)."""
        found: dict[str, str] = {}
        for chunk in chunks(ids, ASSOCIATION_BATCH):
            page = self.crm._call(
                f"read touchpoint-{obj} associations",
                self.crm._associations.get_page_with_http_info,
                self._type_id,
                obj,
                {"inputs": [{"id": i} for i in chunk]},
            )
            for result in page.results or ():
                targets = [str(t.to_object_id) for t in result.to or ()]
                if targets:
                    found[str(result._from.id)] = targets[0]
        return found


def _spec(definition: dict[str, Any]) -> FieldSpec:
    """A property of :data:`.touchpoint_schema.SCHEMA` as the preflight sees it."""
    kind = definition["type"]
    return FieldSpec(
        name=definition["name"],
        type=kind,
        length=MAX_STRING_LENGTH if kind == "string" else None,
        label=definition["label"],
    )
