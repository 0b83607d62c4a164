"""The store's engine (SQLite WAL or any SQLAlchemy URL), made and migrated; set-based writes
are in :mod:`connector.store.writes`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, event, inspect, literal
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlmodel import SQLModel, create_engine

from connector.kernel.errors import ConfigError
from connector.store import migrate, models

CACHE_KIB = 256 * 1024
PAGE_BYTES = 16 * 1024
EXAMPLE_URLS = "sqlite:///closedloop.db or postgresql+psycopg://user@host:5432/closedloop"


def make_engine(url: str, create: bool = True, must_exist: bool | None = None) -> Engine:
    """An engine for ``url`` whose tables exist at the newest schema revision (migrated if need
    be); SQLite gets WAL and a busy timeout so readers never block writers.

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
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise ConfigError(  # bulk loads use psycopg 3's COPY
            f"store.url {shown}: PostgreSQL is reached through psycopg 3; spell it "
            "postgresql+psycopg:// (pip install 'closedloop[postgres]')"
        )
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
            migrate.upgrade(engine)
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
                # A new store's page size (a file that holds tables keeps its own): 16 KiB
                # against SQLite's 4 writes and checkpoints a large load as a quarter of the
                # pages (10M touches: 166 -> 144 s).
                cursor.execute(f"PRAGMA page_size={PAGE_BYTES}")
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # 256 MiB of pages (SQLite's default is 2 MiB): bulk loads touch every index of a
            # large table at random places; a bound, filled only as pages are read.
            cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "checkin")
        def _settings_back(conn: Any, _record: Any) -> None:  # a load changes them (Staged)
            if conn is not None:
                conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
                conn.execute("PRAGMA threads=0")

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
    """Bring a store made by ``create_all`` before migrations existed up to the models: add the
    columns and the indexes it lacks (an index over a large table takes a while, once).

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
            have_indexes = {i["name"] for i in existing.get_indexes(table.name)}
            for index in table.indexes:
                if index.name not in have_indexes:
                    index.create(conn)


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy Core table behind a SQLModel class (for set-based statements)."""
    return model.__table__  # type: ignore[attr-defined,no-any-return]
