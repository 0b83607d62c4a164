"""Write-back: plan the CRM values from the mappings, diff them against the CRM, write real changes.

    preflight (every mapped field exists, is writable, fits)  ->  desired values per record
    -> read current values (batches)  ->  policy decides per field  ->  audit rows (pending)
    -> adapter.write in the API's batches  ->  audit rows ok / failed, per record

Nothing reaches the CRM before the preflight passed and before its audit row is committed, so
every change can be rolled back and a killed run re-runs to the same end state.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from connector.config.mappings import Policy
from connector.kernel import metrics
from connector.kernel.records import FieldSpec, RecordUpdate, WriteResult
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

    def by_object(self) -> dict[str, dict[str, dict[str, str | None]]]:
        grouped: dict[str, dict[str, dict[str, str | None]]] = defaultdict(dict)
        for c in self.changes:
            grouped[c.crm_object].setdefault(c.record_id, {})[c.field] = c.new
        return grouped


def _last_written(session: Session) -> dict[tuple[str, str], str | None]:
    fw = models.FieldWrite
    rows = session.exec(
        select(fw.record_id, fw.field, fw.new_value)
        .where(fw.status == "ok", fw.field != models.WHOLE_RECORD)  # touch records: their own
        .order_by(col(fw.id))
    ).all()
    return {(r, f): v for r, f, v in rows}


def plan(ctx: RunContext, specs: dict[str, dict[str, FieldSpec]]) -> WritePlan:
    """The changes to send: desired values that differ from the CRM's, as each policy allows."""
    result = WritePlan()
    desired = desired_values(ctx, specs, result.problems)
    with Session(ctx.engine) as session:
        last = _last_written(session)
    task = ctx.progress.task(
        "write-back: read current values", total=sum(map(len, desired.values()))
    )
    for obj, _, mappings in targets(ctx):
        records = desired.get(obj, {})
        if not records:
            continue
        policies = {m.field: m.policy for m in mappings}
        current = ctx.crm.read_values(obj, list(records), list(policies))
        for crm_id, fields in records.items():
            result.records_considered += 1
            now = current.get(crm_id)
            if now is None:
                result.problems.append(f"{obj} {crm_id}: not found in the CRM (deleted?)")
                continue
            for name, new in fields.items():
                spec = specs.get(obj, {}).get(name)
                old = canonical(now.get(name), spec)
                if old == canonical(new, spec):
                    continue
                mine = canonical(last.get((crm_id, name)), spec)
                if policies[name] == Policy.FILL_IF_EMPTY and old is not None and old != mine:
                    continue  # a person or another tool set it: leave it
                result.changes.append(Change(obj, crm_id, name, now.get(name), new))
        task.advance(len(records))
    task.finish()
    return result


# -- execute -------------------------------------------------------------------------------
def execute(ctx: RunContext, write_plan: WritePlan) -> dict[str, int]:
    """Record every change as pending, send it, then mark each record ok or failed."""
    assert ctx.run_id is not None
    counts = {"records_written": 0, "records_failed": 0}
    for obj, records in write_plan.by_object().items():
        changes = [c for c in write_plan.changes if c.crm_object == obj]
        with Session(ctx.engine) as session:
            session.add_all(
                [
                    models.FieldWrite(
                        run_id=ctx.run_id,
                        crm_object=obj,
                        record_id=c.record_id,
                        field=c.field,
                        old_value=c.old,
                        new_value=c.new,
                    )
                    for c in changes
                ]
            )
            session.commit()
        task = ctx.progress.task(f"write-back: {obj}", total=len(records))

        def on_batch(results: list[WriteResult], task: Any = task) -> None:
            fw = table_of(models.FieldWrite)
            stmt = (
                update(fw)
                .where(
                    fw.c.run_id == ctx.run_id,
                    fw.c.record_id == bindparam("rid"),
                    fw.c.status == "pending",
                )
                .values(status=bindparam("st"), error=bindparam("err"))
            )
            rows = [
                {"rid": r.crm_id, "st": "ok" if r.ok else "failed", "err": r.error} for r in results
            ]
            with Session(ctx.engine) as session:
                if rows:
                    session.execute(stmt, rows)
                session.commit()
            ok = sum(r.ok for r in results)
            counts["records_written"] += ok
            counts["records_failed"] += len(results) - ok
            metrics.RECORDS_WRITTEN.labels(ctx.crm_kind).inc(ok)
            metrics.RECORDS_FAILED.labels(ctx.crm_kind).inc(len(results) - ok)
            task.advance(len(results))
            ctx.checkpoint()

        updates = [RecordUpdate(crm_id, values) for crm_id, values in records.items()]
        ctx.crm.write(obj, updates, on_batch=on_batch)
        task.finish()
    return counts


def reconcile_pending(ctx: RunContext, specs: dict[str, dict[str, FieldSpec]]) -> int:
    """Settle writes a killed run recorded but never confirmed: ok if the CRM holds the value."""
    fw = models.FieldWrite
    with Session(ctx.engine) as session:
        pending = session.exec(
            select(fw).where(
                fw.status == "pending",
                fw.run_id != ctx.run_id,
                fw.field != models.WHOLE_RECORD,  # touch records: run.touch_records.reconcile
            )
        ).all()
    by_object: dict[str, list[models.FieldWrite]] = defaultdict(list)
    for w in pending:
        by_object[w.crm_object].append(w)
    settled = []
    for obj, rows in by_object.items():
        fields = sorted({w.field for w in rows})
        current = ctx.crm.read_values(obj, sorted({w.record_id for w in rows}), fields)
        for w in rows:
            spec = specs.get(obj, {}).get(w.field)
            now = current.get(w.record_id, {}).get(w.field)
            landed = canonical(now, spec) == canonical(w.new_value, spec)
            settled.append(
                {
                    "wid": w.id,
                    "st": "ok" if landed else "not_applied",
                    "err": "" if landed else f"run {w.run_id} stopped before this write was sent",
                }
            )
    if settled:
        tbl = table_of(fw)
        stmt = update(tbl).where(tbl.c.id == bindparam("wid"))
        with Session(ctx.engine) as session:
            session.execute(stmt.values(status=bindparam("st"), error=bindparam("err")), settled)
            session.commit()
    return len(settled)


def run_writeback(ctx: RunContext) -> WritePlan:
    specs = preflight(ctx)
    if not ctx.dry_run:
        ctx.count("writes_reconciled", reconcile_pending(ctx, specs))
    write_plan = plan(ctx, specs)
    ctx.count("writeback_records_considered", write_plan.records_considered)
    ctx.count("writeback_changes", len(write_plan.changes))
    ctx.count("writeback_problems", len(write_plan.problems))
    for problem in write_plan.problems[:20]:
        log.warning("not written: %s", problem)
    ctx.write_plan = write_plan
    if not ctx.dry_run and write_plan.changes:
        for key, value in execute(ctx, write_plan).items():
            ctx.count(key, value)
    return write_plan
