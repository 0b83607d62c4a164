"""``closedloop serve``: the scheduled jobs of the config, with /healthz and /metrics.

APScheduler runs the jobs (job store in the store database, coalescing, one instance per job,
a misfire grace time). The store lock keeps two processes — two ``serve``s, or ``serve`` and a
manual ``sync`` — from running at once. The health port is bound before any job starts.
SIGTERM/SIGINT let the batch in flight finish, record the run as interrupted, and exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.config.loader import load_config
from connector.config.settings import JobConfig
from connector.kernel import metrics
from connector.kernel.errors import LockHeld
from connector.run.context import build_context
from connector.run.sync import run_sync
from connector.service.http import bind_http, start_http
from connector.store.database import make_engine

log = logging.getLogger(__name__)
STOP = threading.Event()  # set on SIGTERM/SIGINT; every scheduled run checks it between batches
WAIT_SLICE = 0.2  # seconds: the longest a signal waits to be seen
_signals: list[int] = []  # signals received, appended by the handler


def _note_signal(signum: int, _frame: object) -> None:
    # No lock here (not even Event.set): the handler runs in the main thread between two
    # bytecodes, possibly while that thread holds the same lock, and would deadlock it.
    _signals.append(signum)


def stop_requested() -> bool:
    """A SIGTERM/SIGINT arrived (or a stop was asked for): the main loop ends."""
    return bool(_signals) or STOP.is_set()


def catch_stop_signals() -> None:
    """Make SIGTERM/SIGINT a stop request that :func:`serve`'s main loop acts on."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _note_signal)


def run_scheduled(config_path: str, job_name: str) -> None:
    """The scheduled callable (importable, so APScheduler's job store can keep it)."""
    if STOP.is_set():
        return
    loaded = load_config(Path(config_path))
    job = next(j for j in loaded.config.service.jobs if j.name == job_name)
    ctx = build_context(loaded)
    ctx.stop = STOP
    try:
        run = run_sync(ctx, job=job.name, steps=job.steps)
        log.info("job %s: run %s %s (%s API calls)", job.name, run.id, run.status, run.api_calls)
    except LockHeld as exc:
        log.warning("job %s skipped: %s", job.name, exc)
    except Exception:
        log.exception("job %s failed", job.name)
    finally:
        ctx.close()


def trigger(job: JobConfig) -> Any:
    if job.cron:
        return CronTrigger.from_crontab(job.cron, timezone="UTC")
    return IntervalTrigger(minutes=job.interval_minutes or 60, timezone="UTC")


def serve(config_path: Path) -> int:
    """Run until SIGTERM/SIGINT; return the exit code (0 after a clean stop)."""
    catch_stop_signals()
    loaded = load_config(config_path)
    svc = loaded.config.service
    server = bind_http(loaded)  # before anything runs: a port in use stops here, not mid-sync
    if not svc.jobs:
        log.warning("no jobs under service.jobs in %s: only /healthz and /metrics run", config_path)
    engine = make_engine(loaded.store_url())  # the store exists before any job touches it
    STOP.clear()
    scheduler = BackgroundScheduler(
        jobstores={
            "default": SQLAlchemyJobStore(url=loaded.store_url(), tablename="scheduler_job")
        },
        executors={"default": ThreadPoolExecutor(max_workers=2)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": svc.misfire_grace_seconds,
        },  # fmt: skip
        timezone="UTC",
    )
    for job in svc.jobs:
        first = {"next_run_time": datetime.now(UTC)} if job.run_on_start else {}
        scheduler.add_job(
            run_scheduled, trigger(job), args=[str(loaded.path), job.name], id=job.name,
            name=job.name, replace_existing=True, **first,
        )  # fmt: skip
    metrics.declare_jobs([job.name for job in svc.jobs])
    scheduler.start()
    start_http(server, scheduler, engine, STOP)
    log.info("serving %d jobs; health and metrics on http://%s:%d", len(svc.jobs), svc.host,
             server.server_address[1])  # fmt: skip
    metrics.SERVICE_UP.set(1)
    while not stop_requested():
        # short slices: a signal the kernel hands to another thread wakes no wait of this one
        time.sleep(WAIT_SLICE)
    STOP.set()
    _signals.clear()
    log.info("stopping: waiting up to %ss for the batch in flight", svc.shutdown_timeout_seconds)
    stopper = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True)
    stopper.start()
    stopper.join(svc.shutdown_timeout_seconds)
    finished = not stopper.is_alive()
    server.shutdown()
    server.server_close()
    engine.dispose()
    metrics.SERVICE_UP.set(0)
    if not finished:
        log.error("a job did not stop within %ss; exiting anyway", svc.shutdown_timeout_seconds)
        return 1
    log.info("stopped")
    return 0
