"""The store lock on SQLite and PostgreSQL: heartbeat, takeover of a dead holder's lock (on this
machine at once, elsewhere once its heartbeat is stale), the dead holder's run marked killed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update
from sqlmodel import Session

from connector.kernel.timeutil import utcnow
from connector.store import models
from connector.store.database import table_of
from connector.store.lock import LockHeld, job_lock, process_identity

ROOT = Path(__file__).resolve().parents[3]
LOCK = table_of(models.Lock)


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (bounded; no fixed sleep decides)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {check}")


def new_run(engine: Engine) -> int:
    with Session(engine) as session:
        run = models.SyncRun(job="hourly", started_at=utcnow())
        session.add(run)
        session.commit()
        assert run.id is not None
        return run.id


def lock_row(engine: Engine) -> Any:
    with Session(engine) as session:
        return session.execute(select(LOCK).where(LOCK.c.name == "sync")).first()


def run_of(engine: Engine, run_id: int) -> models.SyncRun:
    with Session(engine) as session:
        run = session.get(models.SyncRun, run_id)
        assert run is not None
        session.expunge(run)
        return run


def plant_lock(engine: Engine, process: str, heartbeat_age: timedelta, run_id: int) -> None:
    """A lock as another process left it: its identity and its last heartbeat are made up."""
    now = utcnow()
    with Session(engine) as session:
        session.execute(insert(LOCK).values(
            name="sync", token="someone-else", owner="host-b pid 1", process=process,
            run_id=run_id, acquired_at=now - heartbeat_age, heartbeat_at=now - heartbeat_age,
        ))  # fmt: skip
        session.commit()


def test_a_live_holder_elsewhere_keeps_the_lock_while_its_heartbeat_is_fresh(
    engine: Engine,
) -> None:
    run_id = new_run(engine)
    elsewhere = "another-boot pid:[4026531836] 1 12345"  # another machine's (or container's) PID 1
    plant_lock(engine, elsewhere, timedelta(seconds=5), run_id)
    with pytest.raises(LockHeld, match=r"already running \(host-b pid 1, run \d+, since .*alive"):
        with job_lock(engine, "sync", stale_after=timedelta(seconds=60)):
            pass
    assert run_of(engine, run_id).status == "running"


def test_a_holder_whose_heartbeat_is_stale_is_taken_over_and_its_run_marked_killed(
    engine: Engine,
) -> None:
    run_id = new_run(engine)
    plant_lock(engine, "another-boot pid:[1] 1 12345", timedelta(seconds=90), run_id)
    before = utcnow()
    with job_lock(engine, "sync", stale_after=timedelta(seconds=60)) as lease:
        assert lock_row(engine).token == lease.token
    killed = run_of(engine, run_id)
    assert killed.status == "killed"
    assert killed.finished_at is not None and before <= killed.finished_at <= utcnow()
    assert "died" in killed.error and "host-b pid 1" in killed.error
    assert lock_row(engine) is None  # released


def test_a_dead_or_replaced_process_of_this_machine_is_taken_over_at_once(engine: Engine) -> None:
    child = subprocess.Popen(["sleep", "60"])
    identity = process_identity(child.pid)
    child.kill()
    child.wait()
    if not identity:
        pytest.skip("no /proc to tell a process by")
    boot, namespace, pid, started = process_identity().split()
    reused = f"{boot} {namespace} {pid} {int(started) - 1}"  # our PID, once another process's
    for process in (identity, reused):
        run_id = new_run(engine)
        plant_lock(engine, process, timedelta(seconds=0), run_id)
        with job_lock(engine, "sync", stale_after=timedelta(hours=1)):
            pass
        assert run_of(engine, run_id).status == "killed", process


def test_the_heartbeat_renews_the_lock_and_a_holder_notices_losing_it(engine: Engine) -> None:
    with job_lock(engine, "sync", stale_after=timedelta(seconds=0.6)) as lease:
        first = lock_row(engine).heartbeat_at
        eventually(lambda: lock_row(engine).heartbeat_at > first)
        with Session(engine) as session:  # another process took it over meanwhile
            session.execute(update(LOCK).values(token="taker"))
            session.commit()
        assert lease.lost.wait(30)
    assert lock_row(engine).token == "taker"  # the taker's lock is left alone


HOLDER = """
import os, sys, threading
from datetime import timedelta
from connector.store.database import make_engine
from connector.store.lock import job_lock
engine = make_engine(sys.argv[1])
with job_lock(engine, "sync", timedelta(seconds=float(sys.argv[2]))) as lease:
    lease.attach_run(int(sys.argv[3]))
    print(os.getpid(), flush=True)
    threading.Event().wait()
"""
TAKER = """
import os, sys
from datetime import timedelta
from connector.store.database import make_engine
from connector.store.lock import LockHeld, job_lock
try:
    with job_lock(make_engine(sys.argv[1]), "sync", timedelta(seconds=float(sys.argv[2]))):
        print("taken by pid", os.getpid())
except LockHeld as exc:
    print(exc)
    sys.exit(5)
"""


def in_new_pid_namespace(script: str, *args: str) -> list[str]:
    """``script`` as PID 1 of a new PID namespace, as `serve` runs in a container."""
    unshare = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
    return [*unshare, sys.executable, "-c", script, *args]


def unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(in_new_pid_namespace("pass"), capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not unshare_works(), reason="unshare cannot make a PID namespace here")
def test_a_lock_left_by_pid_1_of_a_dead_container_is_taken_over_from_a_new_one(
    engine: Engine, store_url: str
) -> None:
    """The restarted container's PID 1 is alive again: only the stale heartbeat frees the lock."""
    run_id = new_run(engine)
    holder = subprocess.Popen(in_new_pid_namespace(HOLDER, store_url, "1", str(run_id)),
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "1"
        held = lock_row(engine)
        assert held.process.split()[2] == "1"
        assert held.process.split()[1] != process_identity().split()[1]  # another namespace

        def taker(stale_seconds: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(in_new_pid_namespace(TAKER, store_url, stale_seconds), cwd=ROOT,
                                  capture_output=True, text=True, check=False)  # fmt: skip

        alive = taker("10")  # PID 1 is alive in the taker's namespace too: that says nothing
        assert alive.returncode == 5 and "already running" in alive.stdout, alive
    finally:
        holder.send_signal(signal.SIGKILL)  # the container dies; --kill-child takes its PID 1
        holder.communicate()
    died_at = utcnow()
    refused = taker("3600")
    assert refused.returncode == 5, refused  # not stale yet under an hour's setting
    eventually(lambda: utcnow() - lock_row(engine).heartbeat_at > timedelta(seconds=1.5))
    taken = taker("1")
    assert taken.returncode == 0 and "taken by pid 1" in taken.stdout, taken
    killed = run_of(engine, run_id)
    assert killed.status == "killed" and killed.finished_at is not None
    assert killed.finished_at >= died_at
