"""The store lock: one run of a job at a time, across processes and hosts."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from connector.kernel.errors import ClosedloopError
from connector.kernel.timeutil import utcnow
from connector.store import models
from connector.store.database import table_of


class LockHeld(ClosedloopError):
    """Another process runs this job right now."""


def _holder_is_dead(owner: str) -> bool:
    """A lock left by a process of this host that no longer exists (killed) can be taken over."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def job_lock(engine: Engine, name: str, ttl: timedelta = timedelta(hours=6)) -> Iterator[str]:
    """Hold the store lock ``name``: one run at a time, across processes and hosts.

    A lock expires after ``ttl``; one whose holder died on this host is taken over at once.
    """
    owner = f"{socket.gethostname()}:{os.getpid()}"
    lock = table_of(models.Lock)
    with Session(engine) as session:
        now = utcnow()
        session.execute(lock.delete().where((lock.c.name == name) & (lock.c.expires_at < now)))
        holder = session.execute(select(lock.c.owner).where(lock.c.name == name)).scalar()
        if holder is not None and _holder_is_dead(holder):
            session.execute(lock.delete().where((lock.c.name == name) & (lock.c.owner == holder)))
        try:
            session.execute(insert(lock), [{"name": name, "owner": owner, "expires_at": now + ttl}])
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            who = session.execute(select(lock.c.owner).where(lock.c.name == name)).scalar()
            raise LockHeld(
                f"job {name!r} is already running ({who or 'another process'}); "
                "try again when it ends"
            ) from exc
    try:
        yield owner
    finally:
        with Session(engine) as session:
            session.execute(lock.delete().where((lock.c.name == name) & (lock.c.owner == owner)))
            session.commit()
