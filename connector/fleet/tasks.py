"""The Celery app: one task, an account's run of one job (or one step).

A task is acknowledged only when its run has ended (``acks_late``), also when the worker
process dies under it (``reject_on_worker_lost``: the broker hands it to another worker), and a
worker takes one task at a time (prefetch 1). The run holds the store lock in the account's
schema, so one run per account is in progress across every worker; a request that finds it
held waits (re-queued every ``busy_retry_seconds``) or is dropped, as ``when_busy`` says. A
worker killed mid-run leaves its lock to be taken over and its pending writes to be settled by
the run that follows, so the CRM ends as an uninterrupted run leaves it.
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from celery import Celery, Task

from connector.config.settings import ALL_STEPS, StepName
from connector.fleet.accounts import Fleet, load_fleet
from connector.fleet.limiter import RedisBucket
from connector.kernel.errors import LockHeld
from connector.kernel.ratelimit import share_limits
from connector.kernel.redact import redact
from connector.run.context import build_context
from connector.run.sync import run_sync

log = logging.getLogger(__name__)
FLEET_ENV = "CLOSEDLOOP_FLEET"  # the worker's fleet.yaml (set by `closedloop worker`)
TASK = "closedloop.run_account"

app = Celery("closedloop")
_fleet: dict[str, Any] = {}  # this process's fleet and Redis bucket, loaded on first use


def configure(fleet: Fleet) -> Celery:
    """Point the app at the fleet's broker with the delivery guarantees above."""
    app.conf.update(
        broker_url=fleet.config.broker_url,
        task_default_queue=fleet.config.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


def _current() -> tuple[Fleet, RedisBucket | None]:
    if "fleet" not in _fleet:
        fleet = load_fleet(Path(os.environ.get(FLEET_ENV, "fleet.yaml")))
        url = fleet.config.redis_url
        _fleet["fleet"], _fleet["bucket"] = fleet, RedisBucket(url) if url else None
    return _fleet["fleet"], _fleet["bucket"]


def enqueue(fleet: Fleet, account: str, job: str = "sync", only: StepName | None = None) -> str:
    """Queue a run of ``account``'s ``job`` (or one step); return the task's id."""
    fleet.check_name(account)
    configure(fleet)
    result = app.send_task(TASK, args=[account, job, only], queue=fleet.config.queue)
    return str(result.id)


@app.task(  # type: ignore[untyped-decorator]  # Celery ships no type hints
    bind=True,
    name=TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,  # a busy account (when_busy: wait) is asked again until it runs
)
def run_account(
    task: Task[Any, Any], account: str, job: str = "sync", only: str | None = None
) -> str:
    """One run; returns its status (or ``dropped``); a busy account with ``wait`` retries."""
    fleet, bucket = _current()
    loaded = fleet.account(account)
    configured = {j.name: j for j in loaded.config.service.jobs}
    if job not in configured and job != "sync":
        known = ", ".join(["sync", *configured])
        log.error("account %s has no job %r (service.jobs: %s); nothing ran", account, job, known)
        return "failed"
    steps = list(configured[job].steps) if job in configured else list(ALL_STEPS)
    chosen: StepName | None = next((s for s in ALL_STEPS if s == only), None)
    with share_limits(bucket, fleet.limit_group(account)) if bucket else nullcontext():
        ctx = build_context(loaded)
    try:
        run = run_sync(ctx, only=chosen, job=job, steps=steps)
    except LockHeld as exc:
        if fleet.config.when_busy == "drop":
            log.warning("account %s job %s dropped: %s", account, job, exc)
            return "dropped"
        log.info("account %s job %s waits: %s", account, job, exc)
        raise task.retry(countdown=fleet.config.busy_retry_seconds) from None
    except Exception as exc:  # recorded on the run; the other accounts go on
        log.error("account %s job %s failed: %s", account, job, redact(f"{exc}"))
        return "failed"
    finally:
        ctx.close()
    log.info("account %s job %s: run %s %s", account, job, run.id, run.status)
    return run.status
