"""One sync run: extract -> match -> revenue -> attribute -> conversions -> write-back, each
re-runnable alone.

The run holds the store lock of its job (one run at a time across processes), checks every
system and field it will use before its first step (:func:`preflight_run`), is recorded in
``sync_run`` with its counts, and ends ``succeeded``, ``partial`` (it finished, but some records
failed to write or some input rows were rejected: ``closedloop runs show`` lists them),
``failed``, ``incomplete`` (an API budget stopped it: re-run later to resume) or
``interrupted``; a run whose process died is marked ``killed`` by the process that takes its
lock over.

A dry run (``ctx.dry_run``) runs every step on one store connection whose transaction is rolled
back at the end: it computes exactly what a real run would, sends no write to the CRM, and
leaves the store as it found it — no touchpoints, journeys, credits, cursors or history row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import timedelta

from sqlalchemy import Engine, inspect
from sqlmodel import Session

from connector.config.settings import ALL_STEPS, StepName
from connector.kernel import metrics
from connector.kernel.errors import BudgetExhausted, Interrupted
from connector.kernel.redact import redact
from connector.kernel.timeutil import utcnow
from connector.run.attribute import run_attribution
from connector.run.context import RunContext
from connector.run.conversions import run_conversions
from connector.run.crm_stream import next_step
from connector.run.extract import extract_contacts, extract_sources
from connector.run.match import date_record_touches, person_created, run_match
from connector.run.preflight import preflight_run
from connector.run.revenue import extract_deals
from connector.run.touch_records import prepare, run_touch_records
from connector.run.writeback import run_writeback
from connector.store import models
from connector.store.database import rolled_back, table_of
from connector.store.lock import job_lock
from connector.store.writes import insert_rows

log = logging.getLogger(__name__)

Step = StepName
STEPS = ALL_STEPS  # defined once, in the config models, for `sync` and `serve` alike


def _extract(ctx: RunContext) -> None:
    extract_sources(ctx)
    extract_contacts(ctx)


def _writeback(ctx: RunContext) -> None:
    """Field values, then touchpoint records; both preflights pass before the first write.
    Then the records written are read again (:func:`read_back`)."""
    touch_records = prepare(ctx)
    write_plan = run_writeback(ctx)
    run_touch_records(ctx, touch_records)
    if not ctx.dry_run:
        read_back(ctx, {c.crm_object for c in write_plan.changes})


def read_back(ctx: RunContext, written: set[str]) -> None:
    """Read the CRM streams whose records this run wrote, as extract and revenue do: the next
    run's reads then start after closedloop's own writes, so an unchanged re-sync reads nothing
    but a count per object. A change a person made meanwhile is stored as any read's is, and
    the next run's steps take it up."""
    if written:
        next_step(ctx)  # on Salesforce, the next second: the writes' own is not read again
    if written & set(ctx.crm.person_objects):
        extract_contacts(ctx, "contacts_read_back")
        with Session(ctx.engine) as session:  # the records' own touches, dated as match did
            date_record_touches(session, person_created(session))
            session.commit()
    if ctx.crm.deal_object in written:
        extract_deals(ctx, "deals_read_back")


_RUNNERS: dict[Step, Callable[[RunContext], object]] = {
    "extract": _extract,
    "match": run_match,
    "writeback": _writeback,
    "revenue": extract_deals,
    "attribute": run_attribution,
    "conversions": run_conversions,
}


def run_sync(
    ctx: RunContext, only: Step | None = None, job: str = "sync", steps: Sequence[Step] = STEPS
) -> models.SyncRun:
    """Run the steps (or ``only`` one) under the store lock, always in the order of ``STEPS``;
    return the finished run record."""
    chosen = [only] if only else [step for step in STEPS if step in steps]

    def work(ctx: RunContext) -> None:
        preflight_run(ctx, chosen)
        for step in chosen:
            ctx.checkpoint()
            log.info("run %s: %s", ctx.run_id, step)
            _RUNNERS[step](ctx)

    return run_job(ctx, job, work)


def run_job(
    ctx: RunContext, job: str, work: Callable[[RunContext], object], lock: str = "sync"
) -> models.SyncRun:
    """Run ``work`` as a recorded run holding the store lock ``lock`` (CRM writers share one)."""
    engine = ctx.engine
    assert isinstance(engine, Engine), "a run starts from the store's engine"
    # A dry run on a store that does not exist yet makes none, not even its lock table.
    new_store = ctx.dry_run and not inspect(engine).has_table(table_of(models.Lock).name)
    stale_after = timedelta(seconds=ctx.loaded.config.store.lock_stale_seconds)
    lock_held = nullcontext() if new_store else job_lock(engine, lock, stale_after)
    with lock_held as lease, _store_for(ctx):
        with Session(ctx.engine) as session:
            run = models.SyncRun(job=job, dry_run=ctx.dry_run, started_at=utcnow())
            session.add(run)
            session.commit()
            session.refresh(run)
            ctx.run_id = run.id
        assert run.id is not None
        if lease is not None and not ctx.dry_run:  # a dry run's row is rolled back with it
            lease.attach_run(run.id)
        ctx.lease = lease
        metrics.RUNS_IN_PROGRESS.labels(job).inc()
        status, error = "succeeded", ""
        try:
            work(ctx)
        except BudgetExhausted as exc:
            status, error = "incomplete", str(exc)
            log.warning("run %s stopped to respect the API budget: %s", ctx.run_id, exc)
        except Interrupted as exc:
            status, error = "interrupted", str(exc)
            log.warning("run %s interrupted: %s", ctx.run_id, exc)
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted by signal"
            raise
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            metrics.RUNS_IN_PROGRESS.labels(job).dec()
            if status == "succeeded":
                status, error = _partial(ctx)
            record = _finish(ctx, status, error)
            metrics.RUN_DURATION.labels(job).observe(
                ((record.finished_at or record.started_at) - record.started_at).total_seconds()
            )
            ctx.lease = None
        return record


@contextmanager
def _store_for(ctx: RunContext) -> Iterator[None]:
    """A dry run's steps share one connection whose transaction is rolled back at the end."""
    if not ctx.dry_run:
        yield
        return
    engine = ctx.engine
    assert isinstance(engine, Engine)
    with rolled_back(engine) as connection:
        ctx.engine = connection
        try:
            yield
        finally:
            ctx.engine = engine


def _partial(ctx: RunContext) -> tuple[str, str]:
    """``partial`` when the run finished but left something undone, with what it was."""
    failed = ctx.counts.get("records_failed", 0)
    unsent = ctx.counts.get("writeback_problems", 0)
    rejected = sum(v for k, v in ctx.counts.items() if k.endswith(".rows_rejected"))
    parts = [
        f"{failed} records failed to write" if failed else "",
        f"{unsent} records had values that could not be written" if unsent else "",
        f"{rejected} input rows were rejected" if rejected else "",
    ]
    found = [p for p in parts if p]
    if not found:
        return "succeeded", ""
    return "partial", "; ".join(found) + f" (closedloop runs show {ctx.run_id})"


def _finish(ctx: RunContext, status: str, error: str) -> models.SyncRun:
    with Session(ctx.engine) as session:
        record = session.get(models.SyncRun, ctx.run_id)
        assert record is not None
        # error texts may quote a request (a header, a URL): no secret is stored
        record.status, record.error, record.finished_at = status, redact(error), utcnow()
        session.add(record)
        ctx.save_counts(session)
        rejected = [
            {"run_id": ctx.run_id, "source": name, "message": message}
            for name, message in ctx.rejected
        ]
        insert_rows(session, models.RejectedRow, rejected)
        session.commit()
        session.refresh(record)
        session.expunge(record)
    metrics.RUNS.labels(status).inc()
    if status in {"succeeded", "partial"}:
        metrics.LAST_SUCCESS.set_to_current_time()
    return record
