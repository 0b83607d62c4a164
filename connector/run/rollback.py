"""Rollback: restore the values a run overwrote, where the CRM still holds what closedloop wrote.

A value someone changed since is left alone and reported. The rollback is itself a run whose
writes are audited like any other, so it can be rolled back in turn; the rows it restored are
marked ``rolled_back`` in the audit of the run it undid. Touchpoint records the run created,
changed or deleted are undone by :mod:`.touch_undo`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import exists, update
from sqlmodel import Session, col, select

from connector.kernel.errors import ConfigError
from connector.run.context import RunContext
from connector.run.touch_undo import TouchUndo, rollback_records
from connector.run.values import canonical
from connector.run.writeback import Change, WritePlan, execute
from connector.store import models
from connector.store.database import table_of


@dataclass
class RollbackResult:
    restored: list[Change] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    touch_records: TouchUndo = field(default_factory=TouchUndo)


def plan_rollback(ctx: RunContext, run_id: int) -> RollbackResult:
    fw = models.FieldWrite
    with Session(ctx.engine) as session:
        if session.get(models.SyncRun, run_id) is None:
            raise ConfigError(f"there is no run {run_id}; `closedloop runs` lists them")
        writes = session.exec(
            select(fw)
            .where(fw.run_id == run_id, fw.status == "ok", fw.field != models.WHOLE_RECORD)
            .order_by(col(fw.id))
        ).all()
    by_object: dict[str, list[models.FieldWrite]] = defaultdict(list)
    for w in writes:
        by_object[w.crm_object].append(w)
    result = RollbackResult()
    for obj, rows in by_object.items():
        ids = sorted({w.record_id for w in rows})
        fields = sorted({w.field for w in rows})
        specs = ctx.crm.describe_fields(obj)
        current = ctx.crm.read_values(obj, ids, fields)
        for w in rows:
            spec = specs.get(w.field)
            now = current.get(w.record_id, {}).get(w.field)
            if w.record_id not in current:
                result.left_alone.append(f"{obj} {w.record_id}: no longer in the CRM")
            elif canonical(now, spec) != canonical(w.new_value, spec):
                result.left_alone.append(
                    f"{obj} {w.record_id}.{w.field}: changed since run {run_id} "
                    f"(now {now!r}, closedloop wrote {w.new_value!r}); left alone"
                )
            else:
                result.restored.append(Change(obj, w.record_id, w.field, now, w.old_value))
    return result


def _mark_rolled_back(ctx: RunContext, run_id: int) -> None:
    """Mark ``rolled_back`` the writes of ``run_id`` whose old value this run put back (its own
    write of it confirmed ``ok``), so a second rollback leaves them alone."""
    fw = table_of(models.FieldWrite)
    mine = fw.alias("restoring")
    restored = exists().where(
        mine.c.run_id == ctx.run_id,
        mine.c.status == "ok",
        mine.c.record_id == fw.c.record_id,
        mine.c.field == fw.c.field,
    )
    with Session(ctx.engine) as session:
        session.execute(
            update(fw)
            .where(fw.c.run_id == run_id, fw.c.status == "ok", restored)
            .values(status="rolled_back", error=f"restored by run {ctx.run_id}")
        )
        session.commit()


def rollback(ctx: RunContext, run_id: int) -> RollbackResult:
    """Plan and (unless ``ctx.dry_run``) execute the rollback of ``run_id``."""
    result = plan_rollback(ctx, run_id)
    if not ctx.dry_run and result.restored:
        try:
            execute(ctx, WritePlan(changes=result.restored))
        finally:  # an interrupted rollback marks what it did restore
            _mark_rolled_back(ctx, run_id)
    ctx.count("rollback_restored", len(result.restored))
    ctx.count("rollback_left_alone", len(result.left_alone))
    result.touch_records = rollback_records(ctx, run_id)
    for action in ("create", "update", "delete"):
        ctx.count(f"rollback_touch_records_{action}", result.touch_records.count(action))
    return result
