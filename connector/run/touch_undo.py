"""Undoing touchpoint records: a run's rollback, and a person's erasure.

Rollback works record by record from the run's audit rows, where the CRM still holds what the run
wrote (read back by key): a record the run created is deleted, one it changed gets its previous
values back, one it deleted is created again from the values audited before the delete. A
record changed since is left alone and reported. Erasure deletes every record under the person,
audited without their values, so no rollback can bring them back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlmodel import Session

from connector.kernel.errors import Unavailable
from connector.kernel.identity import email_hash
from connector.kernel.protocols import TouchRecordWriter
from connector.kernel.records import IdentityKind, TouchRecordState
from connector.run.context import RunContext
from connector.run.touch_plan import TouchChange
from connector.run.touch_records import execute, holds, writer_of
from connector.store import models
from connector.store.database import table_of


@dataclass
class TouchUndo:
    """What a rollback or an erasure did (or, dry, would do) to touchpoint records."""

    object: str = ""
    changes: list[TouchChange] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, action: str) -> int:
        return sum(c.action == action for c in self.changes)


def _undo(
    key: str, old: str | None, new: str | None, now: TouchRecordState | None, run_id: int
) -> TouchChange | str:
    """The change that undoes one audited write, or why it is left alone."""
    if new is None:  # the run deleted it
        if now is not None:
            return f"touchpoint record {key}: exists again since run {run_id}; left alone"
        if old is None:
            return f"touchpoint record {key}: erased in run {run_id} (no values kept); left alone"
        return TouchChange(key, "create", old)
    if now is None:
        return f"touchpoint record {key}: no longer in the CRM"
    if old is None:
        return TouchChange(key, "delete", None, old=new, crm_id=now.crm_id)
    return TouchChange(key, "update", old, old=new, crm_id=now.crm_id)


def rollback_records(ctx: RunContext, run_id: int) -> TouchUndo:
    """Plan and (unless ``ctx.dry_run``) undo the touchpoint records ``run_id`` wrote."""
    fw = table_of(models.FieldWrite)
    with Session(ctx.engine) as session:
        writes = session.execute(
            select(fw.c.record_id, fw.c.old_value, fw.c.new_value)
            .where(fw.c.run_id == run_id, fw.c.status == "ok", fw.c.field == models.WHOLE_RECORD)
            .order_by(fw.c.id)
        ).all()
    if not writes:
        return TouchUndo()
    writer = writer_of(ctx)
    try:
        schema = writer.schema(create=False)
    except Unavailable as exc:
        return TouchUndo(left_alone=[f"touchpoint records: {exc}"])
    result = TouchUndo(schema.object)
    fields = list({name: None for _, old, new in writes for text in (old, new) if text
                   for name in json.loads(text)["fields"]})  # fmt: skip
    current = {} if schema.pending else writer.read([k for k, _, _ in writes], fields)
    for key, old, new in writes:
        now = current.get(key)
        if new is not None and now is not None and not holds(now, new, schema.fields):
            result.left_alone.append(
                f"touchpoint record {key}: changed since run {run_id}; left alone"
            )
            continue
        undo = _undo(key, old, new, now, run_id)
        if isinstance(undo, str):
            result.left_alone.append(undo)
        else:
            result.changes.append(undo)
    _send(ctx, writer, result, keep_old=True)
    return result


def _send(ctx: RunContext, writer: TouchRecordWriter, result: TouchUndo, keep_old: bool) -> None:
    if not ctx.dry_run and result.changes:
        result.counts = execute(ctx, writer, result.object, result.changes, keep_old)
        for key, value in result.counts.items():
            ctx.count(key, value)


def person_ids(ctx: RunContext, email: str) -> list[str]:
    """The CRM ids of every record of the person with ``email`` (leads and contacts alike)."""
    identity, contact = table_of(models.Identity), table_of(models.Contact)
    with Session(ctx.engine) as session:
        rows = session.execute(
            select(contact.c.crm_id, contact.c.merged_into)
            .join(identity, identity.c.contact_id == contact.c.id)
            .where(
                identity.c.kind == str(IdentityKind.EMAIL_SHA256),
                identity.c.value == email_hash(email),
            )
        ).all()
    return sorted({i for row in rows for i in row if i})


def forget_records(ctx: RunContext, email: str) -> TouchUndo:
    """Delete (unless ``ctx.dry_run``) every touchpoint record under the person with ``email``;
    the deletes are audited without the records' values."""
    ids = person_ids(ctx, email)
    tr = table_of(models.TouchRecord)
    with Session(ctx.engine) as session:
        rows = session.execute(
            select(tr.c.key, tr.c.crm_id).where(tr.c.person_id.in_(ids))
        ).all() if ids else []  # fmt: skip
    if not rows:
        return TouchUndo()
    writer = writer_of(ctx)
    changes = [TouchChange(k, "delete", None, crm_id=i) for k, i in rows]
    result = TouchUndo(writer.object_name, changes)
    _send(ctx, writer, result, keep_old=False)
    return result
