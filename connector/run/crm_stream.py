"""Reading a CRM stream (people, deals) into the store: what the CRM modified since the cursor,
with the minutes before it checked by a count (:func:`read_stream`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, SQLModel

from connector.kernel import metrics
from connector.kernel.batches import chunks
from connector.kernel.timeutil import utcnow
from connector.run.context import RunContext
from connector.store.database import table_of
from connector.store.writes import get_cursor, set_cursor

log = logging.getLogger(__name__)
T = TypeVar("T")
CRM_BATCH = 1000  # CRM records stored per transaction
# The CRM's clock and ours may differ a little, and its search may show a change a moment late:
# each read of a CRM stream also checks this much before its cursor.
CRM_LAG = timedelta(minutes=5)


def read_stream(
    ctx: RunContext,
    stream: str,
    read: Callable[[datetime | None], Iterable[T]],
    store: Callable[[Session, list[T]], object],
    model: type[SQLModel],
    objects: Sequence[str],
) -> int:
    """Read one CRM stream (its records are ``model`` rows of the CRM ``objects``): everything
    on the first read, then what the CRM modified at or after the cursor, stored in batches,
    each committed; then move the cursor to when this read started.

    The :data:`CRM_LAG` before the cursor is checked too, without reading it: one count per
    object of the records the CRM last modified in that window, against the store's. Only when
    they differ (a change the last read could not see yet) is the window read again. (A late
    change exactly offset by a record deleted in the same minutes passes the count: it is read
    when its record next changes.)"""
    started = utcnow()
    with Session(ctx.engine) as session:
        cursor = get_cursor(session, ctx.crm_kind, stream)
    task = ctx.progress.task(f"{ctx.crm_kind}: {stream}")
    if cursor is None:
        n = _read_into(ctx, read(None), store, task)
    else:
        step = ctx.crm.modified_resolution
        end, start = _floor(cursor, step), _floor(cursor - CRM_LAG, step)
        n = _read_into(ctx, read(end), store, task)
        if not _window_known(ctx, model, objects, start, end):
            n += _read_into(ctx, read(start), store, task)
    with Session(ctx.engine) as session:
        set_cursor(session, ctx.crm_kind, stream, started)
        session.commit()
    task.finish()
    metrics.RECORDS_READ.labels(ctx.crm_kind).inc(n)
    return n


def next_step(ctx: RunContext) -> None:
    """Wait for the CRM's next whole ``modified_resolution`` (at most a second, on Salesforce):
    a read started then leaves every change made before it behind its cursor's step."""
    step, now = ctx.crm.modified_resolution, utcnow()
    ctx.stop.wait((_floor(now, step) + step - now).total_seconds())  # a stop ends the wait
    ctx.checkpoint()


def _floor(moment: datetime, step: timedelta) -> datetime:
    """``moment`` down to a whole ``step`` (what the CRM's filters can compare)."""
    return moment - (moment - datetime.min.replace(tzinfo=moment.tzinfo)) % step


def _read_into(
    ctx: RunContext, records: Iterable[T], store: Callable[[Session, list[T]], object], task: Any
) -> int:
    n = 0
    for chunk in chunks(records, CRM_BATCH):
        with Session(ctx.engine) as session:
            store(session, chunk)
            session.commit()
        n += len(chunk)
        task.advance(len(chunk))
        ctx.checkpoint()
    return n


def _window_known(
    ctx: RunContext, model: type[SQLModel], objects: Sequence[str], start: datetime, end: datetime
) -> bool:
    """Whether the CRM's records last modified in [start, end) are as many as the store's."""
    in_crm = sum(ctx.crm.count_modified(obj, start, end) for obj in objects)
    tbl = table_of(model)
    with Session(ctx.engine) as session:
        stored = session.execute(
            sa_select(func.count())
            .select_from(tbl)
            .where(tbl.c.crm_object.in_(objects), tbl.c.updated_at >= start, tbl.c.updated_at < end)
        ).scalar_one()
    if in_crm != stored:
        log.info(
            "%s: %d records last modified in the %s before the last read, %d known: reading "
            "them again", "/".join(objects), in_crm, CRM_LAG, stored,
        )  # fmt: skip
    return bool(in_crm == stored)
