"""Engine and the set-based helpers every step shares (SQLite WAL or any SQLAlchemy URL)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, event, inspect, literal, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, StatementError
from sqlmodel import Session, SQLModel, create_engine

from connector.kernel.errors import ClosedloopError, ConfigError
from connector.store import migrate, models

CACHE_KIB = 256 * 1024
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
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # 256 MiB of pages (SQLite's default is 2 MiB): bulk loads touch every index of a
            # large table at random places; a bound, filled only as pages are read.
            cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
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


def _bound_columns(
    table: Table, dialect: Any, rows: Sequence[dict[str, Any]]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The column names and the values of ``rows`` (all with the keys of the first) as the
    DB-API takes them, one tuple per row: each value through its column type's bind processor,
    as SQLAlchemy's own executemany does, without its per-row parameter handling. Columns not
    given that have a scalar Python-side default get it. A processor runs once per distinct
    value of a batch (touch times and read stamps repeat)."""
    given = list(rows[0])
    unknown = [c for c in given if c not in table.c]
    if unknown:
        raise ClosedloopError(f"{table.name} has no column {unknown[0]!r}")
    defaults = [c for c in table.c if c.key not in given and c.default is not None]
    if any(not c.default.is_scalar for c in defaults):  # type: ignore[union-attr]
        raise ClosedloopError(f"{table.name}: give every column with a computed default")
    columns = [list(map(itemgetter(c), rows)) for c in given]
    for at, column in enumerate(table.c[c] for c in given):
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if process:
            done: dict[Any, Any] = {}
            try:
                columns[at] = [
                    done[v] if v in done else done.setdefault(v, process(v)) for v in columns[at]
                ]
            except Exception as exc:  # a value the column type refuses: as SQLAlchemy says
                raise StatementError(str(exc), f"INSERT INTO {table.name}", None, exc) from exc
    for column in defaults:
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        value = column.default.arg  # type: ignore[union-attr]
        columns.append([process(value) if process else value] * len(rows))
    return [*given, *(c.key for c in defaults)], list(zip(*columns, strict=True))


class Staged:
    """Rows on their way into ``model``'s table, set-based at any size.

    :meth:`add` appends batches to a temporary table with no key or index (one DB-API
    ``executemany`` on SQLite, ``COPY`` on PostgreSQL), memory bounded by the batch; :meth:`merge`
    moves them into the table in one ``INSERT ... SELECT``, in the order they were given: new
    rows get ids in read order on every backend (journeys order touches at one moment by id,
    so same-day rows of a file keep the file's order). With ``keys``, ``ON CONFLICT (keys)
    action`` applies; rows repeating a key behave as one after the other: the last one given
    wins an update, the first one a DO NOTHING, in the place of the first; the default action
    updates the columns given. Nothing reaches the table before :meth:`merge`, and nothing is
    committed here.
    """

    def __init__(
        self, session: Session, model: type[SQLModel], keys: Sequence[str] = (), action: str = ""
    ) -> None:
        self.table, self.keys, self.action = table_of(model), list(keys), action
        self.conn = session.connection()
        self.dialect = self.conn.dialect
        self.quote = self.dialect.identifier_preparer.quote
        self.stage = self.quote(f"stage_{self.table.name}")
        self.given: list[str] = []

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        given, tuples = _bound_columns(self.table, self.dialect, rows)
        if not self.given:
            self._create(given)
        elif given != self.given:
            raise ClosedloopError(f"{self.table.name}: every batch must give the same columns")
        names = ", ".join(self.quote(c) for c in given)
        if self.dialect.name == "postgresql":
            cursor: Any = self.conn.connection.cursor()
            try:
                with cursor.copy(f"COPY {self.stage} ({names}) FROM STDIN") as copy:
                    for row in tuples:
                        copy.write_row(row)
            finally:
                cursor.close()
        else:
            marks = ", ".join(["?" if self.dialect.paramstyle == "qmark" else "%s"] * len(given))
            self.conn.exec_driver_sql(f"INSERT INTO {self.stage} VALUES ({marks})", tuples)

    def _create(self, given: list[str]) -> None:
        self.given = given
        names, target = ", ".join(self.quote(c) for c in given), self.quote(self.table.name)
        # pysqlite runs DDL outside its transaction: a stage of a stream that failed on this
        # (pooled) connection may still be there
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.stage}")
        if self.dialect.name == "postgresql":
            self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {self.stage} AS SELECT {names} FROM {target} WITH NO DATA"
            )  # seq: the order rows were given in (SQLite's rowid)
            self.conn.exec_driver_sql(f"ALTER TABLE {self.stage} ADD COLUMN seq bigserial")
        else:
            self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {self.stage} AS SELECT {names} FROM main.{target} WHERE 0"
            )

    def missing(self, column: str, value: Any) -> list[int]:
        """Ids of the table's rows whose ``column`` is ``value`` and whose keys were not
        staged: what a complete read of them no longer holds (all of them, if none was)."""
        quote, target = self.quote, self.quote(self.table.name)
        sql = f"SELECT t.id FROM {target} t WHERE t.{quote(column)} = :value"
        if self.given and self.dialect.name == "postgresql":  # a hash anti-join
            same = " AND ".join(f"s.{quote(k)} = t.{quote(k)}" for k in self.keys)
            sql += f" AND NOT EXISTS (SELECT 1 FROM {self.stage} s WHERE {same})"
        elif self.given:  # SQLite builds one temporary index of the list (NOT EXISTS would scan)
            keys = ", ".join(quote(k) for k in self.keys)
            sql += f" AND ({', '.join(f't.{quote(k)}' for k in self.keys)}) NOT IN "
            sql += f"(SELECT {keys} FROM {self.stage})"
        return list(self.conn.execute(text(sql), {"value": value}).scalars())

    def merge(self) -> int:
        """Merge the staged rows into the table; returns how many rows it inserted or changed."""
        if not self.given:
            return 0
        names = ", ".join(self.quote(c) for c in self.given)
        keys = ", ".join(self.quote(k) for k in self.keys)
        action = self.action or upsert_action(self.dialect, self.table.name, self.given, self.keys)
        if not keys:
            order = "seq" if self.dialect.name == "postgresql" else "rowid"
            rows, conflict = f"SELECT {names} FROM {self.stage} ORDER BY {order}", ""
        elif self.dialect.name == "postgresql":  # one INSERT ... SELECT may not touch a row twice
            last = " DESC" if action.startswith("DO UPDATE") else ""
            rows = (
                f"SELECT {names} FROM (SELECT DISTINCT ON ({keys}) {names}, first FROM "
                f"(SELECT *, min(seq) OVER (PARTITION BY {keys}) AS first FROM {self.stage}) s "
                f"ORDER BY {keys}, seq{last}) d ORDER BY first"
            )
            conflict = f" ON CONFLICT ({keys}) {action}"
        else:  # rows are upserted one after the other; WHERE true: SQLite's upsert syntax
            rows = f"SELECT {names} FROM {self.stage} WHERE true ORDER BY rowid"
            conflict = f" ON CONFLICT ({keys}) {action}"
        target = self.quote(self.table.name)
        written = self.conn.exec_driver_sql(f"INSERT INTO {target} ({names}) {rows}{conflict}")
        self.conn.exec_driver_sql(f"DROP TABLE {self.stage}")
        self.given = []
        return int(written.rowcount)


def _execute_many(
    session: Session,
    model: type[SQLModel],
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str] = (),
    action: str = "",
) -> None:
    """INSERT ``rows``, set-based: on SQLite one DB-API ``executemany`` of plain tuples (one
    prepared statement), on PostgreSQL through :class:`Staged`. With ``keys``,
    ``ON CONFLICT (keys) action`` is added; rows repeating a key behave as one after the other:
    the last one given wins an update, the first one a DO NOTHING."""
    if session.get_bind().dialect.name == "postgresql":
        staged = Staged(session, model, keys, action)
        staged.add(rows)
        staged.merge()
        return
    table = table_of(model)
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    conflict = f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) {action}" if keys else ""
    given, tuples = _bound_columns(table, dialect, rows)
    names = ", ".join(quote(c) for c in given)
    marks = ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * len(given))
    sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks}){conflict}"
    session.connection().exec_driver_sql(sql, tuples)


def upsert_action(dialect: Any, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
    """The ON CONFLICT action of an upsert of ``columns`` on ``keys``: update the others, in
    the rows where one of them differs (a re-read of unchanged rows writes nothing: no row
    rewritten, no index entry moved)."""
    quote = dialect.identifier_preparer.quote
    others = [quote(c) for c in columns if c not in keys]
    if not others:
        return "DO NOTHING"
    differs = "IS DISTINCT FROM" if dialect.name == "postgresql" else "IS NOT"
    updates = ", ".join(f"{c} = excluded.{c}" for c in others)
    changed = " OR ".join(f"{quote(table)}.{c} {differs} excluded.{c}" for c in others)
    return f"DO UPDATE SET {updates} WHERE {changed}"


def upsert(
    session: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert ``rows`` or update them on their natural ``keys`` (set-based, see
    :func:`_execute_many`).

    On conflict only the columns given are updated; omitted ones keep their stored value."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name not in {"postgresql", "sqlite"}:
        raise ClosedloopError(f"upsert is not implemented for {dialect.name}")
    action = upsert_action(dialect, table_of(table).name, list(rows[0]), keys)
    _execute_many(session, table, rows, keys, action)


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
