"""Touchpoint records, the write side: part of the write-back step, after the field values.

    prepare (before the step's first write: the CRM's object and every mapped field checked;
    HubSpot's object created) -> settle the writes a killed run left pending -> plan
    (:mod:`.touch_plan`: desired records vs what closedloop last wrote) -> audit rows (pending)
    -> the CRM's batches -> per record: audit ok / failed and ``touch_record``, in one
    transaction per batch.

The same path as field write-back: every create, update and delete is a ``field_write`` row
(field ``*``, the whole record as JSON before and after) committed before it is sent, so
`closedloop rollback` can undo a run and a killed run re-runs to the same end state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlmodel import Session

from connector import systems
from connector.config.mappings import Policy
from connector.config.yamlfile import load_yaml
from connector.kernel import metrics
from connector.kernel.batches import chunks
from connector.kernel.errors import ConfigError, Unavailable
from connector.kernel.protocols import TouchRecordWriter
from connector.kernel.records import (
    FieldSpec,
    TouchRecordDelete,
    TouchRecordResult,
    TouchRecordState,
    TouchRecordWrite,
    TouchSchema,
)
from connector.run import audit
from connector.run.context import RunContext
from connector.run.touch_plan import TouchChange, TouchPlan, digest, plan, rendered
from connector.run.values import canonical
from connector.store import models
from connector.store.database import table_of
from connector.store.writes import upsert

log = logging.getLogger(__name__)

EXECUTE_CHUNK = 100_000  # changes audited, then sent, at a time (a Bulk API job's worth)
PREVIEW = 200  # changes a dry run lists
IN_CHUNK = 500  # keys per IN (...) of a store query
# The field types a value of each kind fits (a text field takes anything).
TYPES_FOR = {
    "number": {"number", "string"},
    "datetime": {"datetime", "date", "string"},
    "string": {"string", "enumeration"},
}


@dataclass
class Prepared:
    writer: TouchRecordWriter
    schema: TouchSchema


@dataclass
class Skipped:
    reason: str


def writer_of(ctx: RunContext) -> TouchRecordWriter:
    cls = systems.touch_records_class(ctx.crm_kind)
    if cls is None:
        raise ConfigError(
            f"{ctx.crm_kind} has no touchpoint object in closedloop: set touchpoint_records."
            "enabled to false in the CRM mapping"
        )
    writer: TouchRecordWriter = cls(ctx.crm)
    return writer


# -- preflight -----------------------------------------------------------------------------
def _wanted(ctx: RunContext) -> list[tuple[tuple[str | int, ...], FieldSpec]]:
    """(place in the mapping file, field) of every record field the mapping fills."""
    cfg = ctx.mapping.touchpoint_records
    wanted: list[tuple[tuple[str | int, ...], FieldSpec]] = [
        (("touchpoint_records", "fields", i, "field"),
         FieldSpec(m.field, "datetime" if m.value == "occurred_at" else m.type, label=m.label))
        for i, m in enumerate(cfg.fields)
        if m.policy != Policy.NEVER
    ]  # fmt: skip
    for i, m in enumerate(cfg.models):
        for kind, name in (("credit", m.credit_field), ("revenue", m.revenue_field)):
            if name:
                label = f"{kind.title()} ({m.model.replace('_', ' ')})"
                wanted.append(
                    (("touchpoint_records", "models", i, f"{kind}_field"),
                     FieldSpec(name, "number", label=label))
                )  # fmt: skip
    return wanted


def preflight(ctx: RunContext, writer: TouchRecordWriter) -> TouchSchema:
    """The CRM's object, with every mapped field present and writable (created first where the
    CRM allows and the mapping says so); a ConfigError lists each problem with its file:line."""
    creatable = ctx.mapping.create_missing_fields
    schema = writer.schema(create=not ctx.dry_run)
    wanted = _wanted(ctx)
    missing = [spec for _, spec in wanted if spec.name not in schema.fields]
    if missing and creatable and not ctx.dry_run:
        writer.create_fields(missing, ctx.mapping.property_group)
        ctx.count("fields_created", len(missing))
        schema = writer.schema(create=True)
    doc = load_yaml(ctx.loaded.resolve(ctx.loaded.config.mappings.crm))
    errors = []
    for loc, spec in wanted:
        found = schema.fields.get(spec.name)
        where = doc.where(loc)
        if found is None:
            if not (ctx.dry_run and creatable):
                errors.append(f"{where}: {schema.object} has no field {spec.name!r}")
        elif not found.updateable:
            errors.append(f"{where}: {schema.object}.{spec.name} is read-only for closedloop")
        elif found.type not in TYPES_FOR[spec.type]:
            fits = " or ".join(sorted(TYPES_FOR[spec.type]))
            errors.append(f"{where}: {schema.object}.{spec.name} is {found.type}, expected {fits}")
    if errors:
        raise ConfigError(
            "touchpoint records: the mapping does not fit the CRM; nothing was written:\n"
            + "\n".join(errors)
        )
    return schema


def prepare(ctx: RunContext) -> Prepared | Skipped | None:
    """Before the write-back's first write: None when touchpoint records are off, Skipped when
    the CRM cannot hold them (said in the log and the run's counts), else the checked object."""
    if not ctx.mapping.touchpoint_records.enabled:
        return None
    writer = writer_of(ctx)
    try:
        return Prepared(writer, preflight(ctx, writer))
    except Unavailable as exc:
        log.warning("touchpoint records skipped: %s", exc)
        ctx.count("touch_records_skipped")
        return Skipped(str(exc))


# -- compare with the CRM ----------------------------------------------------------------------
def holds(now: TouchRecordState | None, text: str, specs: dict[str, FieldSpec]) -> bool:
    """Whether the CRM's record holds the record ``text`` (JSON), compared by meaning."""
    if now is None:
        return False
    record = json.loads(text)
    same_fields = all(
        canonical(now.values.get(name), specs.get(name)) == canonical(value, specs.get(name))
        for name, value in record["fields"].items()
    )
    return same_fields and all(now.links.get(o) == v for o, v in record["links"].items())


def _fields_of(texts: Sequence[str | None]) -> list[str]:
    names: dict[str, None] = {}
    for text in texts:
        if text:
            names.update(dict.fromkeys(json.loads(text)["fields"]))
    return list(names)


# -- execute -------------------------------------------------------------------------------
def _person(text: str, deal_object: str) -> str:
    links = json.loads(text)["links"]
    return next((v for k, v in sorted(links.items()) if k != deal_object and v), "")


def _with_state(ctx: RunContext, changes: list[TouchChange], keep_old: bool) -> list[TouchChange]:
    """Fill each update's and delete's ``old`` (what closedloop last wrote) and ``crm_id``."""
    wanted = [c.key for c in changes if c.action != "create" and c.crm_id is None]
    known: dict[str, tuple[str | None, str]] = {}
    tr = table_of(models.TouchRecord)
    with Session(ctx.engine) as session:
        for part in chunks(wanted, IN_CHUNK):
            query = select(tr.c.key, tr.c.crm_id, tr.c.written).where(tr.c.key.in_(part))
            known.update((k, (i, w)) for k, i, w in session.execute(query))
    out = []
    for c in changes:
        crm_id, written = known.get(c.key, (c.crm_id, c.old))
        old = (c.old or written) if keep_old else None
        out.append(replace(c, old=old if c.action != "create" else c.old, crm_id=crm_id))
    return out


def execute(
    ctx: RunContext,
    writer: TouchRecordWriter,
    object_name: str,
    changes: Sequence[TouchChange],
    keep_old: bool = True,
) -> dict[str, int]:
    """Record every change as pending, send it, then settle each record (audit and
    ``touch_record``) as its batch lands. ``keep_old=False`` audits deletes without the values
    (an erasure must not copy the person's data)."""
    assert ctx.run_id is not None
    counts = {"touch_records_written": 0, "touch_records_failed": 0}
    task = ctx.progress.task("touchpoint records: write", total=len(changes))
    writes = [c for c in changes if c.action != "delete" and c.new is not None]
    removals = [c for c in changes if c.action == "delete"]
    for part in chunks(writes, EXECUTE_CHUNK):
        part = _with_state(ctx, part, keep_old)
        _audit(ctx, object_name, part)
        records = []
        for c in part:
            new = json.loads(c.new or "{}")
            old_links = json.loads(c.old)["links"] if c.old else {}
            records.append(TouchRecordWrite(c.key, new["fields"], new["links"], old_links))
        writer.upsert(records, on_batch=_settler(ctx, part, counts, task))
    for part in chunks(removals, EXECUTE_CHUNK):
        part = _with_state(ctx, part, keep_old)
        _audit(ctx, object_name, part)
        gone = [TouchRecordDelete(c.key, c.crm_id) for c in part]
        writer.delete(gone, on_batch=_settler(ctx, part, counts, task))
    task.finish()
    return counts


def _audit(ctx: RunContext, object_name: str, changes: list[TouchChange]) -> None:
    """The changes as pending audit rows, committed before anything is sent."""
    rows = [
        {"run_id": ctx.run_id, "crm_object": object_name, "record_id": c.key,
         "field": models.WHOLE_RECORD, "old_value": c.old, "new_value": c.new}
        for c in changes
    ]  # fmt: skip
    audit.record(ctx.engine, rows)


def _settler(
    ctx: RunContext, changes: list[TouchChange], counts: dict[str, int], task: Any
) -> Callable[[list[TouchRecordResult]], None]:
    by_key = {c.key: c for c in changes}
    deal_object = ctx.crm.deal_object

    def settle(results: list[TouchRecordResult]) -> None:
        landed = [r for r in results if r.ok]
        states = [
            {"key": r.key, "crm_id": r.crm_id, "inputs_hash": by_key[r.key].inputs,
             "values_hash": digest(new), "written": new, "person_id": _person(new, deal_object),
             "run_id": ctx.run_id}
            for r in landed
            if (new := by_key[r.key].new) is not None
        ]  # fmt: skip
        removed = [r.key for r in landed if by_key[r.key].new is None]
        _settle(ctx, [(r.key, r.ok, r.error) for r in results], states, removed)
        ok = len(landed)
        counts["touch_records_written"] += ok
        counts["touch_records_failed"] += len(results) - ok
        metrics.RECORDS_WRITTEN.labels(ctx.crm_kind).inc(ok)
        metrics.RECORDS_FAILED.labels(ctx.crm_kind).inc(len(results) - ok)
        task.advance(len(results))
        ctx.checkpoint()

    return settle


def _settle(
    ctx: RunContext,
    outcomes: list[tuple[str, bool, str]],
    states: list[dict[str, Any]],
    removed: list[str],
) -> None:
    """One transaction: this run's pending audit rows of these keys settled, the records that
    landed remembered (or forgotten, when deleted) in ``touch_record``."""
    fw, tr = table_of(models.FieldWrite), table_of(models.TouchRecord)
    with Session(ctx.engine) as session:
        audit.settle(session, ctx.run_id or 0, outcomes, fw.c.field == models.WHOLE_RECORD)
        upsert(session, models.TouchRecord, states, ["key"])
        for part in chunks(removed, IN_CHUNK):
            session.execute(delete(tr).where(tr.c.key.in_(part)))
        session.commit()


# -- a killed run's pending writes -------------------------------------------------------------
def reconcile(ctx: RunContext, prepared: Prepared) -> int:
    """Settle the records a killed run recorded but never confirmed: ok (and remembered) where
    the CRM holds what it meant to write, else ``not_applied`` (the plan sends it again)."""
    fw = table_of(models.FieldWrite)
    with Session(ctx.engine) as session:
        pending = session.execute(
            select(fw.c.id, fw.c.run_id, fw.c.record_id, fw.c.new_value).where(
                fw.c.status == "pending",
                fw.c.field == models.WHOLE_RECORD,
                fw.c.run_id != ctx.run_id,
            )
        ).all()
    if not pending:
        return 0
    keys = list(dict.fromkeys(key for _, _, key, _ in pending))
    current = prepared.writer.read(keys, _fields_of([new for *_, new in pending]))
    specs = prepared.schema.fields
    settled, states, removed = [], [], []
    for wid, run_id, key, new in pending:
        now = current.get(key)
        landed = now is None if new is None else holds(now, new, specs)
        settled.append({"wid": wid, "st": "ok" if landed else "not_applied",
                        "err": "" if landed else f"run {run_id} stopped before this write "
                        "was confirmed; the plan sends it again"})  # fmt: skip
        if landed and new is None:
            removed.append(key)
        elif landed and now is not None and new is not None:
            states.append({"key": key, "crm_id": now.crm_id, "inputs_hash": 0,
                           "values_hash": digest(new), "written": new,
                           "person_id": _person(new, ctx.crm.deal_object),
                           "run_id": run_id})  # fmt: skip
    tr = table_of(models.TouchRecord)
    with Session(ctx.engine) as session:
        stmt = update(fw).where(fw.c.id == bindparam("wid"))
        session.execute(stmt.values(status=bindparam("st"), error=bindparam("err")), settled)
        upsert(session, models.TouchRecord, states, ["key"])
        for part in chunks(removed, IN_CHUNK):
            session.execute(delete(tr).where(tr.c.key.in_(part)))
        session.commit()
    return len(settled)


def _refresh(ctx: RunContext, refreshed: list[tuple[str, int]]) -> None:
    """Remember the new inputs of records whose JSON did not change (nothing to send)."""
    if refreshed:
        tr = table_of(models.TouchRecord)
        stmt = update(tr).where(tr.c.key == bindparam("k")).values(inputs_hash=bindparam("i"))
        with Session(ctx.engine) as session:
            session.execute(stmt, [{"k": key, "i": inputs} for key, inputs in refreshed])
            session.commit()


# -- the step ------------------------------------------------------------------------------
@dataclass
class TouchOutcome:
    """What the touchpoint-record part of a write-back did (or, dry, would do)."""

    plan: TouchPlan | None = None
    skipped: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    preview: list[TouchChange] = field(default_factory=list)  # a dry run's first changes


def run_touch_records(ctx: RunContext, prepared: Prepared | Skipped | None) -> TouchOutcome:
    """Plan and (unless a dry run) write the touchpoint records; the plan is ``ctx.touch_plan``."""
    if prepared is None:
        return TouchOutcome()
    if isinstance(prepared, Skipped):
        skipped = TouchOutcome(skipped=prepared.reason)
        ctx.touch_plan = skipped
        return skipped
    if not ctx.dry_run:
        ctx.count("touch_records_reconciled", reconcile(ctx, prepared))
    touch_plan = plan(ctx, prepared.schema)
    outcome = TouchOutcome(plan=touch_plan)
    ctx.touch_plan = outcome
    for action in ("create", "update", "delete"):
        ctx.count(f"touch_records_to_{action}", touch_plan.count(action))
    ctx.count("touch_records_unchanged", touch_plan.unchanged)
    planned = [c for c in touch_plan.changes if c.action != "create"]
    if ctx.dry_run:  # render every create (its problems count) and keep the first to show
        for part in rendered(ctx, touch_plan, EXECUTE_CHUNK):
            outcome.preview.extend(part[: PREVIEW - len(outcome.preview)])
        outcome.preview.extend(planned[: PREVIEW - len(outcome.preview)])
    else:
        _refresh(ctx, touch_plan.refreshed)
        outcome.counts = execute(ctx, prepared.writer, touch_plan.object, planned)
        for part in rendered(ctx, touch_plan, EXECUTE_CHUNK):  # sent before the next renders
            for key, value in execute(ctx, prepared.writer, touch_plan.object, part).items():
                outcome.counts[key] = outcome.counts.get(key, 0) + value
        for key, value in outcome.counts.items():
            ctx.count(key, value)
    ctx.count("touch_records_problems", len(touch_plan.problems))
    for problem in touch_plan.problems[:20]:
        log.warning("not written: %s", problem)
    return outcome
