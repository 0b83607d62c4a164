"""Touchpoint records: the diff between what the store says (:mod:`.touch_source`) and what
closedloop last wrote (``touch_record``), without reading the CRM.

Per key, ``touch_record`` keeps the signature of the inputs a record was rendered from and the
hash of the JSON it was written with. A record whose inputs are unchanged is not rendered at
all; one whose inputs changed is rendered and compared by its JSON (a mapping edit that changes
no value rewrites nothing: only the stored signature is refreshed); a new record is rendered only
when it is sent (:func:`rendered`); a written record no longer in the store is deleted. So a
sync with nothing changed sends nothing, and planning a million records stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from connector.kernel.records import TouchSchema
from connector.kernel.timeutil import iso_z, utcnow
from connector.run.context import RunContext
from connector.run.touch_source import BATCH, Source, digest, dump, record_key

__all__ = ["TouchChange", "TouchPlan", "digest", "dump", "plan", "record_key", "rendered"]


@dataclass(frozen=True, slots=True)
class TouchChange:
    """One record to create, update or delete. ``new`` is its JSON (None for a delete, and for a
    planned create until :func:`rendered` renders it); ``old`` and ``crm_id`` are filled from the
    store when sent, unless given (a rollback's); ``inputs`` is its inputs' signature (0:
    unknown)."""

    key: str
    action: str  # create | update | delete
    new: str | None
    old: str | None = None
    crm_id: str | None = None
    inputs: int = 0


@dataclass
class TouchPlan:
    object: str
    changes: list[TouchChange] = field(default_factory=list)
    unchanged: int = 0
    too_old: int = 0  # touches before lookback_days that were never written
    problems: list[str] = field(default_factory=list)
    refreshed: list[tuple[str, int]] = field(default_factory=list)  # same JSON, new inputs
    source: Source | None = None  # what the records were read from, to render them

    def count(self, action: str) -> int:
        return sum(c.action == action for c in self.changes)


def _written(session: Session) -> dict[str, tuple[int, int]]:
    """key -> (inputs signature, JSON hash) of every record closedloop wrote."""
    cursor: Any = session.connection().connection.cursor()
    try:
        cursor.execute("SELECT key, inputs_hash, values_hash FROM touch_record")
        return {key: (inputs, values) for key, inputs, values in cursor.fetchall()}
    finally:
        cursor.close()


def plan(ctx: RunContext, schema: TouchSchema, now: datetime | None = None) -> TouchPlan:
    """The creates, updates and deletes that make the CRM's touchpoint records what the store
    says, compared with what closedloop last wrote (never read from the CRM)."""
    cfg = ctx.mapping.touchpoint_records
    cutoff = iso_z((now or utcnow()) - timedelta(days=cfg.lookback_days))
    result = TouchPlan(schema.object)
    task = ctx.progress.task("touchpoint records: plan")
    with Session(ctx.engine) as session:
        written = _written(session)
        result.source = source = Source(session, ctx, schema)
        for n, (key, at, inputs, values, links, extra) in enumerate(source.records(session)):
            if n % BATCH == BATCH - 1:
                task.advance(BATCH)
            before = written.pop(key, None)
            if before is None:
                if at < cutoff:
                    result.too_old += 1
                else:
                    result.changes.append(TouchChange(key, "create", None, inputs=inputs))
                continue
            if before[0] == inputs:
                result.unchanged += 1
                continue
            try:
                text = source.renderer.json(values, links, extra)
            except ValueError as exc:  # reported; its last write stays
                result.problems.append(f"touchpoint record {key}: {exc}")
                continue
            if digest(text) == before[1]:
                result.unchanged += 1
                result.refreshed.append((key, inputs))
            else:
                result.changes.append(TouchChange(key, "update", text, inputs=inputs))
    result.changes.extend(TouchChange(key, "delete", None) for key in written)
    task.finish()
    return result


def rendered(ctx: RunContext, result: TouchPlan, size: int) -> Iterator[list[TouchChange]]:
    """The plan's creates with their JSON, ``size`` at a time, rendered in one pass over the
    store (the caller sends each part before the next is rendered: memory stays bounded); a
    create that cannot be rendered is reported in ``result.problems`` and left out."""
    wanted = {c.key: c.inputs for c in result.changes if c.action == "create" and not c.new}
    if not wanted or result.source is None:
        return
    part: list[TouchChange] = []
    with Session(ctx.engine) as session:
        for key, _, _, values, links, extra in result.source.records(session):
            inputs = wanted.get(key)
            if inputs is None:
                continue
            try:
                text = result.source.renderer.json(values, links, extra)
            except ValueError as exc:
                result.problems.append(f"touchpoint record {key}: {exc}")
                continue
            part.append(TouchChange(key, "create", text, inputs=inputs))
            if len(part) == size:
                yield part
                part = []
    if part:
        yield part
