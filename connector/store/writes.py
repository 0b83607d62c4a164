"""Set-based writes every step shares: upserts and inserts of many rows in one statement (on
PostgreSQL through :class:`connector.store.staged.Staged`), and the streams' cursors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlmodel import Session, SQLModel

from connector.kernel.errors import ClosedloopError
from connector.store import models
from connector.store.database import table_of
from connector.store.staged import Staged, bound_rows, default_literals, upsert_action


def _execute_many(
    session: Session,
    model: type[SQLModel],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    keys: Sequence[str] = (),
) -> None:
    """INSERT ``rows`` (tuples of the ``columns``' values), set-based: on SQLite one DB-API
    ``executemany`` (one prepared statement), on PostgreSQL through :class:`Staged`. With
    ``keys``, upserted (:func:`upsert_action`); rows repeating a key behave as one after the
    other."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        staged = Staged(session, model, columns, keys)
        staged.add(rows)
        staged.merge()
        return
    table = table_of(model)
    quote = dialect.identifier_preparer.quote
    conflict = ""
    if keys:
        action = upsert_action(dialect, table.name, columns, keys)
        conflict = f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) {action}"
    tuples = bound_rows(table, dialect, columns, rows)
    defaults = default_literals(table, dialect, columns)
    marks = ["?" if dialect.paramstyle == "qmark" else "%s"] * len(columns)
    values = ", ".join([*marks, *defaults.values()])
    listed = ", ".join(quote(c) for c in [*columns, *defaults])
    sql = f"INSERT INTO {quote(table.name)} ({listed}) VALUES ({values}){conflict}"
    session.connection().exec_driver_sql(sql, tuples)


def _values(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Dict rows (all with the keys of the first) as their column names and value tuples."""
    columns = list(rows[0])
    if len(columns) == 1:
        return columns, [(row[columns[0]],) for row in rows]
    return columns, list(map(itemgetter(*columns), rows))


def upsert(
    session: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert ``rows`` or update them on their natural ``keys`` (set-based, see
    :func:`_execute_many`).

    On conflict only the columns given are updated; omitted ones keep their stored value."""
    if rows:
        upsert_values(session, table, *_values(rows), keys)


def upsert_values(
    session: Session,
    table: type[SQLModel],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    keys: Sequence[str],
) -> None:
    """:func:`upsert` of rows given as tuples of the ``columns``' values."""
    dialect = session.get_bind().dialect
    if dialect.name not in {"postgresql", "sqlite"}:
        raise ClosedloopError(f"upsert is not implemented for {dialect.name}")
    _execute_many(session, table, columns, rows, keys)


def insert_rows(session: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        _execute_many(session, table, *_values(rows))


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
