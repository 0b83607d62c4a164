"""Write-back: plan the CRM values from the mappings, diff them against the CRM, write real changes.

    preflight (every mapped field exists, is writable, fits)  ->  desired values per record
    -> read current values (batches)  ->  policy decides per field  ->  audit rows (pending)
    -> adapter.write in the API's batches  ->  audit rows ok / failed, per record

A field closedloop wrote whose value is gone (the person no longer has a journey, a deal no
longer has credits, a touch no longer has a campaign) is cleared, as its policy allows.

Nothing reaches the CRM before the preflight passed and before its audit row is committed, so
every change can be rolled back and a killed run re-runs to the same end state: the next plan
settles the killed run's pending rows against the CRM values it reads anyway.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from connector.config.mappings import Policy
from connector.kernel import metrics
from connector.kernel.records import FieldSpec, RecordUpdate, WriteResult
from connector.kernel.redact import redact
from connector.kernel.timeutil import utcnow
from connector.run import audit
from connector.run import writeback_reads as reads
from connector.run.context import RunContext
from connector.run.preflight import preflight, targets
from connector.run.values import canonical, desired_values
from connector.store import models
from connector.store.database import table_of

log = logging.getLogger(__name__)


@dataclass
class Change:
    crm_object: str
    record_id: str
    field: str
    old: str | None
    new: str | None


@dataclass
class WritePlan:
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    records_considered: int = 0
    settled: int = 0  # a killed run's unconfirmed writes, settled against the same read
    # object -> record -> digest of its desired values, for the records read back: settled
    # (run.writeback_reads) when nothing is to change, else when its write is confirmed
    digests: dict[str, dict[str, int]] = field(default_factory=dict)
    looked_at: datetime | None = None  # before the CRM was searched for modified records

    def by_object(self) -> dict[str, dict[str, dict[str, str | None]]]:
        grouped: dict[str, dict[str, dict[str, str | None]]] = defaultdict(dict)
        for c in self.changes:
            grouped[c.crm_object].setdefault(c.record_id, {})[c.field] = c.new
        return grouped


def last_written(session: Session) -> dict[tuple[str, str, str], str | None]:
    """(object, record, field) -> the value closedloop last wrote there.

    Keyed by object too: a contact and a deal may share an id (HubSpot numbers them apart)."""
    fw = models.FieldWrite
    rows = session.exec(
        select(fw.crm_object, fw.record_id, fw.field, fw.new_value)
        .where(fw.status == "ok", fw.field != models.WHOLE_RECORD)  # touch records: their own
        .order_by(col(fw.id))
    ).all()
    return {(o, r, f): v for o, r, f, v in rows}


def _to_clear(
    obj: str,
    records: dict[str, dict[str, str | None]],
    last: dict[tuple[str, str, str], str | None],
    fields: set[str],
    converted: set[str],
) -> dict[str, dict[str, str | None]]:
    """Fields closedloop wrote a value to that now have none: record -> {field: None}.

    A converted lead is left alone: Salesforce refuses updates to it, its contact has the
    values."""
    out: dict[str, dict[str, str | None]] = defaultdict(dict)
    for (o, crm_id, name), value in last.items():
        if o == obj and value and name in fields and crm_id not in converted:
            if name not in records.get(crm_id, {}):
                out[crm_id][name] = None
    return out


def _converted(session: Session) -> set[str]:
    c = models.Contact
    return set(session.exec(select(c.crm_id).where(col(c.merged_into).is_not(None))).all())


def _unsettled(session: Session, run_id: int | None) -> dict[str, list[models.FieldWrite]]:
    """Per object: writes an earlier run recorded but never confirmed (it was killed)."""
    fw = models.FieldWrite
    rows = session.exec(
        select(fw)
        .where(
            fw.status == "pending",
            fw.run_id != run_id,
            fw.field != models.WHOLE_RECORD,  # touch records: run.touch_records.reconcile
        )
        .order_by(col(fw.id))
    ).all()
    by_object: dict[str, list[models.FieldWrite]] = defaultdict(list)
    for w in rows:
        by_object[w.crm_object].append(w)
    return by_object


def _settle(
    rows: list[models.FieldWrite],
    current: dict[str, dict[str, Any]],
    specs: dict[str, FieldSpec],
    last: dict[tuple[str, str, str], str | None],
) -> list[dict[str, Any]]:
    """ok where the CRM holds the value (it landed, maybe after its run died), else not_applied;
    values that landed count as closedloop's own for ``fill_if_empty``."""
    settled = []
    for w in rows:
        spec = specs.get(w.field)
        now = current.get(w.record_id, {}).get(w.field)
        landed = canonical(now, spec) == canonical(w.new_value, spec)
        if landed:
            last[(w.crm_object, w.record_id, w.field)] = w.new_value
        error = "" if landed else f"run {w.run_id} stopped before this value reached the CRM"
        settled.append({"wid": w.id, "st": "ok" if landed else "not_applied", "err": error})
    return settled


def _save_settled(ctx: RunContext, settled: list[dict[str, Any]]) -> None:
    tbl = table_of(models.FieldWrite)
    stmt = update(tbl).where(tbl.c.id == bindparam("wid"), tbl.c.status == "pending")
    with Session(ctx.engine) as session:
        session.execute(stmt.values(status=bindparam("st"), error=bindparam("err")), settled)
        session.commit()


def plan(ctx: RunContext, specs: dict[str, dict[str, FieldSpec]]) -> WritePlan:
    """The changes to send: desired values that differ from the CRM's, as each policy allows.

    The same read of the CRM's current values settles the writes a killed run left pending, so
    the audit and the plan agree: a value found in the CRM is ``ok`` and not sent again; one not
    found is ``not_applied`` and sent again if still wanted. (Not in a dry run: it saves
    nothing.)"""
    result = WritePlan()
    desired = desired_values(ctx, specs, result.problems)
    result.looked_at = utcnow()
    with Session(ctx.engine) as session:
        last = last_written(session)
        converted = _converted(session)
        unsettled = _unsettled(session, ctx.run_id)
        known = reads.known(session)
        since = {obj: reads.since(session, obj) for obj, _, _ in targets(ctx)}
    clear = {
        obj: _to_clear(obj, desired.get(obj, {}), last, {m.field for m in mappings}, converted)
        for obj, _, mappings in targets(ctx)
    }
    task = ctx.progress.task(
        "write-back: read current values",
        total=sum(len({*desired.get(obj, {}), *records}) for obj, records in clear.items()),
    )
    settled: list[dict[str, Any]] = []
    for obj, _, mappings in targets(ctx):
        records = desired.get(obj, {})
        pending = unsettled.pop(obj, [])
        if not records and not clear[obj] and not pending:
            continue
        policies = {m.field: m.policy for m in mappings}
        digests = {i: reads.values_digest(v, policies) for i, v in records.items()}
        for crm_id in [*clear[obj], *(w.record_id for w in pending)]:
            digests.pop(crm_id, None)  # read whatever the digest says
        skip = reads.unchanged(ctx, obj, digests, known, since[obj])
        result.records_considered += len(skip)
        records = {i: v for i, v in records.items() if i not in skip}
        ids = list(dict.fromkeys([*records, *clear[obj], *(w.record_id for w in pending)]))
        fields = list(dict.fromkeys([*policies, *(w.field for w in pending)]))
        current = ctx.crm.read_values(obj, ids, fields)
        settled += _settle(pending, current, specs.get(obj, {}), last)
        for crm_id, cleared in clear[obj].items():
            if crm_id in current:  # a record deleted in the CRM has nothing left to clear
                records.setdefault(crm_id, {}).update(cleared)
        found = result.digests.setdefault(obj, {})
        for crm_id, fields_ in records.items():
            result.records_considered += 1
            now = current.get(crm_id)
            if now is None:
                result.problems.append(f"{obj} {crm_id}: not found in the CRM (deleted?)")
                continue
            if crm_id in digests:
                found[crm_id] = digests[crm_id]
            for name, new in fields_.items():
                spec = specs.get(obj, {}).get(name)
                old = canonical(now.get(name), spec)
                if old == canonical(new, spec):
                    continue
                mine = canonical(last.get((obj, crm_id, name)), spec)
                if policies[name] == Policy.FILL_IF_EMPTY and old is not None and old != mine:
                    continue  # a person or another tool set it: leave it
                result.changes.append(Change(obj, crm_id, name, now.get(name), new))
        task.advance(len(records) + len(skip))
    for obj, pending in unsettled.items():  # objects closedloop no longer writes to
        fields = sorted({w.field for w in pending})
        current = ctx.crm.read_values(obj, sorted({w.record_id for w in pending}), fields)
        settled += _settle(pending, current, specs.get(obj, {}), last)
    task.finish()
    result.settled = len(settled)
    if settled and not ctx.dry_run:
        _save_settled(ctx, settled)
    return result


# -- execute -------------------------------------------------------------------------------
def settle_batch(session: Session, run_id: int, obj: str, results: list[WriteResult]) -> None:
    """Mark the run's pending audit rows of these records ``ok`` or ``failed``.

    Filtered by object: a contact and a deal with the same id must not settle each other."""
    fw = table_of(models.FieldWrite)
    outcomes = [(r.crm_id, r.ok, redact(r.error)) for r in results]
    audit.settle(session, run_id, outcomes, fw.c.crm_object == obj)


def execute(ctx: RunContext, write_plan: WritePlan) -> None:
    """Record every change as pending, send it, then mark each record ok or failed.

    Counted on the run batch by batch, so a run stopped half-way shows what it did write."""
    assert ctx.run_id is not None
    ctx.count("records_written", 0)
    ctx.count("records_failed", 0)
    for obj, records in write_plan.by_object().items():
        changes = [c for c in write_plan.changes if c.crm_object == obj]
        rows = [
            {"run_id": ctx.run_id, "crm_object": obj, "record_id": c.record_id, "field": c.field,
             "old_value": c.old, "new_value": c.new}
            for c in changes
        ]  # fmt: skip
        audit.record(ctx.engine, rows)
        task = ctx.progress.task(f"write-back: {obj}", total=len(records))

        def on_batch(results: list[WriteResult], obj: str = obj, task: Any = task) -> None:
            landed = write_plan.digests.get(obj, {})
            with Session(ctx.engine) as session:
                settle_batch(session, ctx.run_id or 0, obj, results)
                reads.remember(session, obj, {r.crm_id: landed[r.crm_id] for r in results
                                              if r.ok and r.crm_id in landed})  # fmt: skip
                session.commit()
            ok = sum(r.ok for r in results)
            ctx.count("records_written", ok)
            ctx.count("records_failed", len(results) - ok)
            metrics.RECORDS_WRITTEN.labels(ctx.crm_kind).inc(ok)
            metrics.RECORDS_FAILED.labels(ctx.crm_kind).inc(len(results) - ok)
            task.advance(len(results))
            ctx.checkpoint()

        updates = [RecordUpdate(crm_id, values) for crm_id, values in records.items()]
        ctx.crm.write(obj, updates, on_batch=on_batch)
        task.finish()


def run_writeback(ctx: RunContext) -> WritePlan:
    specs = preflight(ctx)
    write_plan = plan(ctx, specs)
    if write_plan.settled:
        ctx.count("writes_reconciled", write_plan.settled)
    ctx.count("writeback_records_considered", write_plan.records_considered)
    ctx.count("writeback_changes", len(write_plan.changes))
    ctx.count("writeback_problems", len(write_plan.problems))
    for problem in write_plan.problems[:20]:
        log.warning("not written: %s", problem)
    ctx.write_plan = write_plan
    if ctx.dry_run:
        return write_plan
    changed = {(c.crm_object, c.record_id) for c in write_plan.changes}
    with Session(ctx.engine) as session:
        for obj, digests in write_plan.digests.items():
            unchanged = {r: d for r, d in digests.items() if (obj, r) not in changed}
            reads.remember(session, obj, unchanged)
        session.commit()
    if write_plan.changes:
        execute(ctx, write_plan)
    done = utcnow() if write_plan.changes else write_plan.looked_at
    reads.mark(ctx, [obj for obj, _, _ in targets(ctx)], done or utcnow())
    return write_plan
