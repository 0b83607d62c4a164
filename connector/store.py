"""Engine, sessions and the small helpers every step shares (SQLite WAL or any SQLAlchemy URL)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, event, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, create_engine

from connector import models
from connector.errors import ClosedloopError
from connector.timeutil import utcnow


class LockHeld(ClosedloopError):
    """Another process runs this job right now."""


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so readers never block writers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cursor = conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    SQLModel.metadata.create_all(engine)
    return engine


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy Core table behind a SQLModel class (for set-based statements)."""
    return model.__table__  # type: ignore[attr-defined,no-any-return]


def upsert(
    session: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert ``rows`` or update them on their natural ``keys`` (set-based, one executemany)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    tbl = table_of(table)
    stmt: Any = postgresql.insert(tbl) if dialect == "postgresql" else sqlite.insert(tbl)
    if dialect not in {"postgresql", "sqlite"}:
        raise ClosedloopError(f"upsert is not implemented for {dialect}")
    update_cols = [c for c in rows[0] if c not in keys]
    stmt = (
        stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update_cols}
        )
        if update_cols
        else stmt.on_conflict_do_nothing(index_elements=list(keys))
    )
    session.execute(stmt, list(rows))


def insert_rows(session: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(table_of(table)), list(rows))


def get_cursor(session: Session, source: str, stream: str) -> datetime | None:
    row = session.get(models.Cursor, (source, stream))
    return row.value.astimezone(UTC) if row else None


def set_cursor(session: Session, source: str, stream: str, value: datetime) -> None:
    upsert(
        session,
        models.Cursor,
        [{"source": source, "stream": stream, "value": value}],
        ["source", "stream"],
    )


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
