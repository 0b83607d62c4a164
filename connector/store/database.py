"""Engine and the set-based helpers every step shares (SQLite WAL or any SQLAlchemy URL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

from sqlalchemy import Engine, Table, event, inspect, literal
from sqlalchemy.exc import StatementError
from sqlmodel import Session, SQLModel, create_engine

from connector.kernel.errors import ClosedloopError
from connector.store import models


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so readers never block writers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cursor = conn.cursor()
            # WAL is kept in the file: switch only once (switching needs the file to itself)
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    SQLModel.metadata.create_all(engine)
    add_missing_columns(engine)
    return engine


def add_missing_columns(engine: Engine) -> None:
    """Bring a store made by an earlier version up to date: add the columns it lacks, and their
    indexes.

    ``create_all`` creates missing tables, never missing columns. A new column is nullable or
    has a scalar default, which fills the rows already there."""
    existing = inspect(engine)
    tables = set(existing.get_table_names())
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            if table.name not in tables:
                continue
            have = {c["name"] for c in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                sql = f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} "
                sql += column.type.compile(engine.dialect)
                default = getattr(column.default, "arg", None)
                if default is not None and not callable(default):
                    value = literal(default).compile(
                        dialect=engine.dialect, compile_kwargs={"literal_binds": True}
                    )
                    sql += f" DEFAULT {value}"
                if not column.nullable:
                    sql += " NOT NULL"
                conn.exec_driver_sql(sql)
                for index in table.indexes:
                    if column.name in index.columns:
                        index.create(conn, checkfirst=True)


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy Core table behind a SQLModel class (for set-based statements)."""
    return model.__table__  # type: ignore[attr-defined,no-any-return]


def _execute_many(
    session: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]], conflict: str = ""
) -> None:
    """INSERT ``rows`` (all with the keys of the first) with one DB-API ``executemany`` of plain
    tuples: the values and the Python-side defaults of the columns not given go through the
    column types' bind processors, as SQLAlchemy's own executemany does, without its per-row
    parameter handling. ``conflict`` is appended to the statement (an ON CONFLICT clause)."""
    tbl = table_of(table)
    dialect = session.get_bind().dialect
    given = list(rows[0])
    unknown = [c for c in given if c not in tbl.c]
    if unknown:
        raise ClosedloopError(f"{tbl.name} has no column {unknown[0]!r}")
    defaults = [c for c in tbl.c if c.key not in given and c.default is not None]
    if any(not c.default.is_scalar for c in defaults):  # type: ignore[union-attr]
        raise ClosedloopError(f"{tbl.name}: give every column with a computed default")
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in [*given, *(c.key for c in defaults)])
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join([mark] * (len(given) + len(defaults)))
    sql = f"INSERT INTO {quote(tbl.name)} ({names}) VALUES ({marks}){conflict}"
    columns: list[Any] = []
    try:
        for column in [tbl.c[c] for c in given]:
            process = column.type.dialect_impl(dialect).bind_processor(dialect)
            values = [row[column.key] for row in rows]
            columns.append(list(map(process, values)) if process else values)
        for column in defaults:
            process = column.type.dialect_impl(dialect).bind_processor(dialect)
            value = column.default.arg  # type: ignore[union-attr]
            columns.append(repeat(process(value) if process else value, len(rows)))
    except Exception as exc:  # a value the column type refuses: as SQLAlchemy reports it
        raise StatementError(str(exc), sql, None, exc) from exc
    session.connection().exec_driver_sql(sql, list(zip(*columns, strict=True)))


def upsert(
    session: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert ``rows`` or update them on their natural ``keys`` (set-based, one executemany).

    On conflict only the columns given are updated; omitted ones keep their stored value."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name not in {"postgresql", "sqlite"}:
        raise ClosedloopError(f"upsert is not implemented for {dialect.name}")
    quote = dialect.identifier_preparer.quote
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in rows[0] if c not in keys)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    _execute_many(
        session, table, rows, f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) {action}"
    )


def insert_rows(session: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        _execute_many(session, table, rows)


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
