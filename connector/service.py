"""``closedloop serve``: the scheduled jobs of the config, with /healthz and /metrics.

APScheduler runs the jobs (job store in the store database, coalescing, one instance per job,
a misfire grace time). The store lock keeps two processes — two ``serve``s, or ``serve`` and a
manual ``sync`` — from running at once. SIGTERM/SIGINT let the batch in flight finish, record the
run as interrupted, and exit 0.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from connector import metrics, models
from connector.config import JobConfig, LoadedConfig, load_config
from connector.context import build_context
from connector.store import LockHeld, make_engine
from connector.sync import run_sync

log = logging.getLogger(__name__)
STOP = threading.Event()  # set by SIGTERM/SIGINT; every scheduled run checks it between batches


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
        log.info("job %s skipped: %s", job.name, exc)
    except Exception:
        log.exception("job %s failed", job.name)
    finally:
        ctx.close()


def trigger(job: JobConfig) -> Any:
    if job.cron:
        return CronTrigger.from_crontab(job.cron, timezone="UTC")
    return IntervalTrigger(minutes=job.interval_minutes or 60, timezone="UTC")


def health(engine: Engine, scheduler: BackgroundScheduler) -> tuple[int, dict[str, Any]]:
    with Session(engine) as session:
        last = session.exec(
            select(models.SyncRun).order_by(col(models.SyncRun.id).desc()).limit(1)
        ).first()
    body = {
        "status": "ok" if scheduler.running and not STOP.is_set() else "stopping",
        "jobs": [
            {"id": j.id, "next_run": j.next_run_time.isoformat() if j.next_run_time else None}
            for j in scheduler.get_jobs()
        ],
        "last_run": None if last is None else {
            "id": last.id, "job": last.job, "status": last.status,
            "started_at": last.started_at.isoformat(),
        },
    }  # fmt: skip
    return (200 if body["status"] == "ok" else 503), body


def start_http(
    loaded: LoadedConfig, scheduler: BackgroundScheduler, engine: Engine
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/metrics":
                status, payload, kind = 200, generate_latest(), CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                status, body = health(engine, scheduler)
                payload, kind = json.dumps(body).encode(), "application/json"
            else:
                status, payload, kind = 404, b"not found\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            # through logging (JSON lines, secrets redacted), not socketserver's print to stderr
            log.warning("health/metrics request from %s failed", client_address[0], exc_info=True)

    svc = loaded.config.service
    server = Server((svc.host, svc.port), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    ).start()
    return server


def serve(config_path: Path) -> int:
    """Run until SIGTERM/SIGINT; return the exit code (0 after a clean stop)."""
    loaded = load_config(config_path)
    svc = loaded.config.service
    if not svc.jobs:
        log.warning("no jobs under service.jobs in %s: only /healthz and /metrics run", config_path)
    engine = make_engine(loaded.store_url())  # the store exists before any job touches it
    STOP.clear()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: STOP.set())
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

    scheduler.start()
    server = start_http(loaded, scheduler, engine)
    log.info("serving %d jobs; health and metrics on http://%s:%d", len(svc.jobs), svc.host,
             server.server_address[1])  # fmt: skip
    metrics.SERVICE_UP.set(1)
    STOP.wait()
    log.info("stopping: waiting up to %ss for the batch in flight", svc.shutdown_timeout_seconds)
    stopper = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True)
    stopper.start()
    stopper.join(svc.shutdown_timeout_seconds)
    finished = not stopper.is_alive()
    server.shutdown()
    engine.dispose()
    metrics.SERVICE_UP.set(0)
    if not finished:
        log.error("a job did not stop within %ss; exiting anyway", svc.shutdown_timeout_seconds)
        return 1
    log.info("stopped")
    return 0
