"""Engine and the set-based helpers every step shares (SQLite WAL or any SQLAlchemy URL)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, event, inspect, literal
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, StatementError
from sqlmodel import Session, SQLModel, create_engine

from connector.kernel.errors import ClosedloopError, ConfigError
from connector.store import models

EXAMPLE_URLS = "sqlite:///closedloop.db or postgresql+psycopg://user@host:5432/closedloop"


def make_engine(url: str, create: bool = True, must_exist: bool | None = None) -> Engine:
    """An engine for ``url`` whose tables exist; SQLite gets WAL and a busy timeout so readers
    never block writers.

    ``create=False`` (commands that only read) never makes a store: a missing one is an error,
    unless ``must_exist=False`` (a dry run, which makes its tables in its own transaction).
    Every problem with the URL — unparsable, unknown scheme, driver not installed, missing
    folder, unwritable file, database that does not exist — is a :class:`ConfigError` naming
    ``store.url`` without its password.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"store.url is not a database URL (expected e.g. {EXAMPLE_URLS})"
        ) from None
    must_exist = not create if must_exist is None else must_exist
    shown = parsed.render_as_string(hide_password=True)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in {"", ":memory:"}:
        _check_sqlite_file(shown, Path(database), must_exist)
    try:
        engine = _engine(url)
    except NoSuchModuleError:
        hint = (
            " (PostgreSQL is spelled postgresql+psycopg://)"
            if parsed.drivername == "postgres"
            else ""
        )
        raise ConfigError(
            f"store.url {shown}: unknown database kind {parsed.drivername!r}{hint}; "
            f"expected e.g. {EXAMPLE_URLS}"
        ) from None
    except ImportError as exc:
        raise ConfigError(
            f"store.url {shown}: its driver ({exc.name or exc}) is not installed; for PostgreSQL "
            "use postgresql+psycopg:// and pip install 'closedloop[postgres]'"
        ) from None
    try:
        if create:
            SQLModel.metadata.create_all(engine)
            add_missing_columns(engine)
            update_indexes(engine)
        elif must_exist and not inspect(engine).has_table(table_of(models.SyncRun).name):
            raise ConfigError(f"store.url {shown}: no closedloop store there yet; run a sync first")
    except DBAPIError as exc:
        engine.dispose()
        raise ConfigError(f"store.url {shown}: {_reason(exc, parsed)}") from None
    except ConfigError:
        engine.dispose()
        raise
    return engine


def _check_sqlite_file(shown: str, path: Path, must_exist: bool) -> None:
    if not path.exists() and must_exist:
        raise ConfigError(f"store.url {shown}: there is no store at {path}; run a sync first")
    if not path.parent.is_dir():
        raise ConfigError(
            f"store.url {shown}: the folder {path.parent} does not exist; create it or change "
            "store.url"
        )


def _reason(exc: DBAPIError, url: URL) -> str:
    """The driver's own words, on one line, never with the password in them."""
    text = " ".join(str(exc.orig).split())
    if url.password:
        text = text.replace(str(url.password), "***")
    if "unable to open database file" in text or "readonly database" in text:
        text += " (is the path writable?)"
    return text


def _engine(url: str) -> Engine:
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
    return engine


@contextmanager
def rolled_back(engine: Engine) -> Iterator[Connection]:
    """One connection whose sessions commit only into a transaction rolled back at the end.

    A session bound to it (``Session(conn)``) joins with a SAVEPOINT of its own: its commit
    releases the savepoint, so later sessions read what earlier ones wrote, exactly as in a real
    run, and nothing stays in the store afterwards (the dry run).
    """
    with engine.connect() as conn:
        outer = conn.begin()
        if conn.dialect.name == "sqlite":
            # pysqlite begins lazily, at the first write: a SAVEPOINT before it would open a
            # transaction of its own that its release commits. Begin for real first.
            conn.exec_driver_sql("BEGIN")
        conn.begin_nested()  # sessions on a connection inside a SAVEPOINT use SAVEPOINTs too
        SQLModel.metadata.create_all(conn)  # a new store's tables, rolled back with the rest
        try:
            yield conn
        finally:
            outer.rollback()


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


OBSOLETE_INDEXES = ("ix_field_write_run_id",)  # replaced by ix_field_write_run_record


def update_indexes(engine: Engine) -> None:
    """Give a store made by an earlier version the indexes it lacks (``create_all`` adds none
    to a table that exists) and drop the ones replaced, so no query can pick them."""
    with engine.begin() as conn:
        for name in OBSOLETE_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        for table in SQLModel.metadata.sorted_tables:
            for index in table.indexes:
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
