"""One sync run: extract -> match -> revenue -> attribute -> write-back, each re-runnable alone.

The run holds the store lock of its job (one run at a time across processes), is recorded in
``sync_run`` with its counts, and ends ``succeeded``, ``failed``, ``incomplete`` (an API budget
stopped it: re-run later to resume) or ``interrupted``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal

from sqlmodel import Session

from connector.kernel import metrics
from connector.kernel.errors import BudgetExhausted, Interrupted
from connector.kernel.timeutil import utcnow
from connector.run.attribute import run_attribution
from connector.run.context import RunContext
from connector.run.extract import extract_contacts, extract_sources
from connector.run.match import run_match
from connector.run.revenue import extract_deals
from connector.run.touch_records import prepare, run_touch_records
from connector.run.writeback import run_writeback
from connector.store import models
from connector.store.lock import job_lock

log = logging.getLogger(__name__)

Step = Literal["extract", "match", "writeback", "revenue", "attribute"]
# Write-back comes last so deals can receive their attribution summary too.
STEPS: tuple[Step, ...] = ("extract", "match", "revenue", "attribute", "writeback")


def _extract(ctx: RunContext) -> None:
    extract_sources(ctx)
    extract_contacts(ctx)


def _writeback(ctx: RunContext) -> None:
    """Field values, then touchpoint records; both preflights pass before the first write."""
    touch_records = prepare(ctx)
    run_writeback(ctx)
    run_touch_records(ctx, touch_records)


_RUNNERS: dict[Step, Callable[[RunContext], object]] = {
    "extract": _extract,
    "match": run_match,
    "writeback": _writeback,
    "revenue": extract_deals,
    "attribute": run_attribution,
}


def run_sync(
    ctx: RunContext, only: Step | None = None, job: str = "sync", steps: Sequence[Step] = STEPS
) -> models.SyncRun:
    """Run the steps (or ``only`` one) under the store lock; return the finished run record."""
    chosen = [only] if only else list(steps)

    def work(ctx: RunContext) -> None:
        for step in chosen:
            ctx.checkpoint()
            log.info("run %s: %s", ctx.run_id, step)
            _RUNNERS[step](ctx)

    return run_job(ctx, job, work)


def run_job(
    ctx: RunContext, job: str, work: Callable[[RunContext], object], lock: str = "sync"
) -> models.SyncRun:
    """Run ``work`` as a recorded run holding the store lock ``lock`` (CRM writers share one)."""
    with job_lock(ctx.engine, lock):
        with Session(ctx.engine) as session:
            run = models.SyncRun(job=job, dry_run=ctx.dry_run, started_at=utcnow())
            session.add(run)
            session.commit()
            session.refresh(run)
            ctx.run_id = run.id
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
            record = _finish(ctx, status, error)
        return record


def _finish(ctx: RunContext, status: str, error: str) -> models.SyncRun:
    with Session(ctx.engine) as session:
        record = session.get(models.SyncRun, ctx.run_id)
        assert record is not None
        record.status, record.error, record.finished_at = status, error, utcnow()
        session.add(record)
        ctx.save_counts(session)
        session.commit()
        session.refresh(record)
        session.expunge(record)
    metrics.RUNS.labels(status).inc()
    if status == "succeeded":
        metrics.LAST_SUCCESS.set_to_current_time()
    return record
