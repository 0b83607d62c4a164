"""The store lock: one run of a job at a time, across processes, hosts and containers.

Each acquisition has a unique token; while the lock is held a thread renews its heartbeat every
sixth of ``stale_after``. Another process takes the lock over when

- its heartbeat is older than ``stale_after`` (the holder died, on any host or in any container:
  a restarted container's ``serve`` is PID 1 again, so a PID says nothing there), or
- its holder ran in this process's PID namespace on this boot, and that PID is now free or
  belongs to a process started later (a kill on this machine is seen at once).

Taking a lock over marks the dead holder's run ``killed``. A holder that finds its lock gone
(it was paused for longer than ``stale_after`` and someone took over) sets :attr:`Lease.lost`;
the run stops before its next batch.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session

from connector.kernel import metrics
from connector.kernel.errors import LockHeld
from connector.kernel.timeutil import utcnow
from connector.store import models
from connector.store.database import table_of

__all__ = ["Lease", "LockHeld", "job_lock", "process_identity"]

log = logging.getLogger(__name__)
DEFAULT_STALE_AFTER = timedelta(seconds=60)


@dataclass
class Lease:
    """A held lock: its token, and ``lost`` once another process has taken it over."""

    engine: Engine
    name: str
    token: str
    lost: threading.Event = field(default_factory=threading.Event)

    def attach_run(self, run_id: int) -> None:
        """Name the run this lock protects, so a process taking it over can mark it killed."""
        lock = table_of(models.Lock)
        with Session(self.engine) as session:
            session.execute(
                update(lock)
                .where(lock.c.name == self.name, lock.c.token == self.token)
                .values(run_id=run_id)
            )
            session.commit()


def process_identity(pid: int | None = None) -> str:
    """``boot-id pid-namespace pid start-time`` of a process, or "" where /proc cannot tell.

    Two identities are comparable only with the same boot id and PID namespace; the start time
    tells a reused PID from the process that held the lock."""
    proc = Path("/proc")
    try:
        boot = (proc / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(proc / "self/ns/pid")
        me = (proc / "self/stat").read_text().split()[0]
        if pid is None:
            pid = os.getpid()
        if me != str(os.getpid()):
            return ""  # a /proc of another PID namespace: its PIDs are not ours
        stat = (proc / str(pid) / "stat").read_text()
    except (OSError, IndexError):
        return ""
    started = stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks
    return f"{boot} {namespace} {pid} {started}"


def _holder_is_gone(process: str) -> bool:
    """True when the holder ran in our PID namespace on this boot and is no longer running."""
    parts = process.split()
    mine = process_identity().split()
    if len(parts) != 4 or len(mine) != 4 or parts[:2] != mine[:2] or not parts[2].isdigit():
        return False  # another host, boot or container: only the heartbeat can tell
    return process_identity(int(parts[2])) != process


def _describe(row: Any, now: datetime) -> str:
    age = (now - row.heartbeat_at).total_seconds()
    run = f", run {row.run_id}" if row.run_id else ""
    return f"{row.owner}{run}, since {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC, alive {age:.0f}s ago"


def _take_over(session: Session, row: Any, now: datetime, me: str) -> None:
    """Delete a dead holder's lock and mark its run killed (only if nobody else did first)."""
    lock = table_of(models.Lock)
    gone = session.execute(lock.delete().where(lock.c.name == row.name, lock.c.token == row.token))
    if not getattr(gone, "rowcount", 0) or row.run_id is None:
        return
    run = table_of(models.SyncRun)
    marked = session.execute(
        update(run)
        .where(run.c.id == row.run_id, run.c.status == "running")
        .values(
            status="killed",
            finished_at=now,
            error=(
                f"its process ({row.owner}) died: lock last renewed "
                f"{row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC; found by {me} at "
                f"{now:%Y-%m-%d %H:%M:%S} UTC"
            ),
        )
    )
    if getattr(marked, "rowcount", 0):
        metrics.RUNS.labels("killed").inc()
    log.warning("lock %r of %s taken over: its holder died", row.name, _describe(row, now))


def _acquire(engine: Engine, name: str, stale_after: timedelta) -> Lease:
    lease = Lease(engine, name, uuid.uuid4().hex)
    me = f"{socket.gethostname()} pid {os.getpid()}"
    lock = table_of(models.Lock)
    with Session(engine) as session:
        now = utcnow()
        held = session.execute(select(lock).where(lock.c.name == name)).first()
        if held is not None and (
            now - held.heartbeat_at > stale_after or _holder_is_gone(held.process)
        ):
            _take_over(session, held, now, me)
        try:
            row: dict[str, Any] = {"name": name, "token": lease.token, "owner": me}
            row |= {"process": process_identity(), "acquired_at": now, "heartbeat_at": now}
            session.execute(insert(lock), [row])
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            holder = session.execute(select(lock).where(lock.c.name == name)).first()
            who = _describe(holder, utcnow()) if holder else "another process"
            raise LockHeld(
                f"job {name!r} is already running ({who}); try again when it ends "
                f"(a holder that stops renewing the lock for {stale_after.total_seconds():.0f}s "
                "is taken over)"
            ) from exc
    return lease


def _heartbeat(lease: Lease, every: float, done: threading.Event) -> None:
    # SIGTERM/SIGINT go to the main thread, which then stops the run between batches
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    lock = table_of(models.Lock)
    while not done.wait(every):
        try:
            with Session(lease.engine) as session:
                renewed = session.execute(
                    update(lock)
                    .where(lock.c.name == lease.name, lock.c.token == lease.token)
                    .values(heartbeat_at=utcnow())
                )
                session.commit()
        except SQLAlchemyError as exc:  # a busy store: the next beat tries again
            log.warning("could not renew the lock %r: %s", lease.name, exc)
            continue
        if not getattr(renewed, "rowcount", 0):
            log.error("lock %r was taken over by another process; stopping", lease.name)
            lease.lost.set()
            return


@contextmanager
def job_lock(
    engine: Engine, name: str, stale_after: timedelta = DEFAULT_STALE_AFTER
) -> Iterator[Lease]:
    """Hold the store lock ``name`` (renewed while held); raise :class:`LockHeld` if taken."""
    lease = _acquire(engine, name, stale_after)
    done = threading.Event()
    beat = threading.Thread(
        target=_heartbeat,
        args=(lease, stale_after.total_seconds() / 6, done),
        name=f"lock {name} heartbeat",
        daemon=True,
    )
    beat.start()
    try:
        yield lease
    finally:
        done.set()
        beat.join()
        lock = table_of(models.Lock)
        with Session(engine) as session:
            session.execute(lock.delete().where(lock.c.name == name, lock.c.token == lease.token))
            session.commit()
