"""``closedloop serve --workers celery``: the one scheduler of a fleet.

It runs no sync itself: on each account's schedules (``service.jobs`` of its closedloop.yaml) it
queues the job for the workers, and answers ``/healthz`` (its schedule) and ``/metrics``: its
own counters, plus each account's runs by status, runs in progress and last success, read
from the account's schema at each scrape (so they count every worker's runs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from connector.fleet.accounts import Fleet
from connector.fleet.schemas import require_migrated
from connector.fleet.tasks import enqueue
from connector.kernel.errors import ConfigError
from connector.service.http import Handler, HealthServer
from connector.service.scheduler import WAIT_SLICE, catch_stop_signals, stop_requested, trigger

log = logging.getLogger(__name__)
ENQUEUED = Counter("closedloop_jobs_enqueued", "Jobs queued for the workers", ["account", "job"])
RUNS_SQL = text(
    "SELECT status, count(*) AS n, max(finished_at) AS last FROM sync_run GROUP BY status"
)


class AccountRuns:
    """A Prometheus collector of every account's runs, read from its schema."""

    def __init__(self, fleet: Fleet, names: list[str]) -> None:
        self.engines: dict[str, Engine] = {
            name: create_engine(fleet.account_url(name), pool_size=1) for name in names
        }

    def collect(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "closedloop_account_runs",
            "Runs by account and final status",
            labels=["account", "status"],
        )
        busy = GaugeMetricFamily(
            "closedloop_account_runs_in_progress", "Runs going on now", labels=["account"]
        )
        success = GaugeMetricFamily(
            "closedloop_account_last_success_timestamp_seconds",
            "End of the account's last successful run",
            labels=["account"],
        )
        for name, engine in self.engines.items():
            try:
                with engine.connect() as conn:
                    rows = list(conn.execute(RUNS_SQL))
            except SQLAlchemyError as exc:
                log.warning("metrics of account %s not read: %s", name, exc)
                continue
            finished = [r.last for r in rows if r.status in {"succeeded", "partial"} and r.last]
            for row in rows:
                if row.status != "running":
                    runs.add_metric([name, row.status], row.n)
            busy.add_metric([name], sum(r.n for r in rows if r.status == "running"))
            if finished:
                success.add_metric([name], max(finished).replace(tzinfo=UTC).timestamp())
        yield from (runs, busy, success)

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


class _Handler(Handler):
    def health(self) -> tuple[int, dict[str, Any]]:
        """The fleet's scheduler runs no sync: its health is its schedule."""
        scheduler = self.server.scheduler
        ok = scheduler.running and not stop_requested()
        jobs = [
            {"id": j.id, "next_run": j.next_run_time.isoformat() if j.next_run_time else None}
            for j in scheduler.get_jobs()
        ]
        return (200 if ok else 503), {"status": "ok" if ok else "stopping", "jobs": jobs}


def queue_job(fleet: Fleet, account: str, job: str) -> None:
    """The scheduled callable: one job of one account onto the queue."""
    try:
        task_id = enqueue(fleet, account, job)
    except Exception:  # the broker away for a moment: the next schedule tries again
        log.exception("could not queue job %s of account %s", job, account)
        return
    ENQUEUED.labels(account, job).inc()
    log.info("queued job %s of account %s: task %s", job, account, task_id)


def serve_fleet(fleet: Fleet) -> int:
    """Queue every account's jobs on their schedules until SIGTERM/SIGINT; the exit code."""
    catch_stop_signals()
    names = fleet.names()
    accounts = {name: fleet.account(name) for name in names}  # every config valid first
    require_migrated(fleet, names)
    try:
        server = HealthServer((fleet.config.host, fleet.config.port), _Handler)
    except OSError as exc:
        raise ConfigError(
            f"{fleet.path}: port: cannot listen on {fleet.config.host}:{fleet.config.port} for "
            f"/healthz and /metrics ({exc.strerror or exc})"
        ) from None
    scheduler = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
        timezone="UTC",
    )
    for name, loaded in accounts.items():
        for job in loaded.config.service.jobs:
            first = {"next_run_time": datetime.now(UTC)} if job.run_on_start else {}
            scheduler.add_job(
                queue_job, trigger(job), args=[fleet, name, job.name], id=f"{name}.{job.name}",
                **first,
            )  # fmt: skip
    collector = AccountRuns(fleet, names)
    REGISTRY.register(collector)
    scheduler.start()
    server.scheduler = scheduler
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    ).start()
    port = server.server_address[1]
    jobs = len(scheduler.get_jobs())
    log.info("scheduling %d jobs of %d accounts; health and metrics on http://%s:%d", jobs,
             len(names), fleet.config.host, port)  # fmt: skip
    while not stop_requested():
        time.sleep(WAIT_SLICE)
    log.info("stopping")
    scheduler.shutdown(wait=True)
    server.shutdown()
    server.server_close()
    REGISTRY.unregister(collector)
    collector.close()
    return 0
