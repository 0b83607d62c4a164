"""Set-based writes every step shares: rows staged and merged (:class:`Staged`), upserts and
inserts of many rows in one statement, and the streams' cursors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Index, Table, inspect, text
from sqlalchemy.exc import StatementError
from sqlmodel import Session, SQLModel

from connector.kernel.errors import ClosedloopError
from connector.store import models
from connector.store.database import CACHE_KIB, table_of

# SQLite pages a merge may keep: the key's index of a 10M-row table grows at random places
# (1 GiB halves the time of such a merge against 256 MiB); given back at the final merge, or
# with the connection.
MERGE_CACHE_KIB = 1024 * 1024


def _bound_columns(
    table: Table, dialect: Any, given: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The column names and ``rows`` (tuples of the ``given`` columns' values) as the DB-API
    takes them: each value through its column type's bind processor, as SQLAlchemy's own
    executemany does, without its per-row parameter handling. Columns not given that have a
    scalar Python-side default get it. A processor runs once per distinct value of a batch
    (touch times repeat)."""
    unknown = [c for c in given if c not in table.c]
    if unknown:
        raise ClosedloopError(f"{table.name} has no column {unknown[0]!r}")
    defaults = [c for c in table.c if c.key not in given and c.default is not None]
    if any(not c.default.is_scalar for c in defaults):  # type: ignore[union-attr]
        raise ClosedloopError(f"{table.name}: give every column with a computed default")
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    if len(columns) != len(given):
        raise ClosedloopError(f"{table.name}: expected {len(given)} values per row")
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

    :meth:`add` appends batches (tuples of the ``columns``' values) to a temporary table with
    no key or index (one DB-API ``executemany`` on SQLite, ``COPY`` on PostgreSQL), memory
    bounded by the batch; :meth:`merge` moves the rows added since the last merge into the
    table in one ``INSERT ... SELECT``, in the order they were given: new rows get ids in read
    order on every backend (journeys order touches at one moment by id, so same-day rows of a
    file keep the file's order). With ``keys``, ``ON CONFLICT (keys) action`` applies; rows
    repeating a key behave as one after the other: the last one given wins an update, the
    first one a DO NOTHING, in the place of the first; the default action updates the columns
    given (a column left to its default keeps its stored value). Nothing reaches the table
    before a merge, and nothing is committed here.

    A load at least twice the table's size (a first load) drops the table's plain indexes at
    its first merge and builds them again at the final one: one sort each instead of an insert
    at a random place per row. A final first merge into an empty PostgreSQL table also drops
    the key's unique constraint (its speculative inserts cost 4x a plain one; DISTINCT ON
    makes the rows unique). All of it in the transaction: a rollback keeps the indexes.
    """

    def __init__(
        self,
        session: Session,
        model: type[SQLModel],
        columns: Sequence[str],
        keys: Sequence[str] = (),
        action: str = "",
    ) -> None:
        self.table, self.columns, self.keys = table_of(model), list(columns), list(keys)
        self.conn = session.connection()
        self.dialect = self.conn.dialect
        self.action = action or upsert_action(self.dialect, self.table.name, columns, keys)
        self.quote = self.dialect.identifier_preparer.quote
        self.target = self.quote(self.table.name)
        self.stage = self.quote(f"stage_{self.table.name}")
        self.names: list[str] = []  # of the stage: the columns given, then defaulted ones
        self.count = 0  # rows staged (the stage's rowid / seq of the last)
        self.merged = 0  # rows merged (ditto)
        self.dropped: list[Index] = []  # plain indexes to build again at the final merge
        self.before: int | None = None  # the table's last id before the first merge

    @property
    def incremental(self) -> bool:
        """Whether merging each batch as it comes pays: on SQLite the merge of one batch runs
        (outside the GIL) while the next is read; on PostgreSQL one final merge lets a first
        load drop the key's constraint."""
        return self.dialect.name == "sqlite"

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        names, tuples = _bound_columns(self.table, self.dialect, self.columns, rows)
        if not self.names:
            self._create(names)
        self.count += len(tuples)
        listed = ", ".join(self.quote(c) for c in names)
        if self.dialect.name == "postgresql":
            cursor: Any = self.conn.connection.cursor()
            try:
                with cursor.copy(f"COPY {self.stage} ({listed}) FROM STDIN") as copy:
                    for row in tuples:
                        copy.write_row(row)
            finally:
                cursor.close()
        else:
            marks = ", ".join(["?" if self.dialect.paramstyle == "qmark" else "%s"] * len(names))
            self.conn.exec_driver_sql(f"INSERT INTO {self.stage} VALUES ({marks})", tuples)

    def _create(self, names: list[str]) -> None:
        self.names = names
        listed = ", ".join(self.quote(c) for c in names)
        # pysqlite runs DDL outside its transaction: a stage of a stream that failed on this
        # (pooled) connection may still be there
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.stage}")
        if self.dialect.name == "postgresql":
            self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {self.stage} AS SELECT {listed} FROM {self.target} "
                "WITH NO DATA"
            )  # seq: the order rows were given in (SQLite's rowid)
            self.conn.exec_driver_sql(f"ALTER TABLE {self.stage} ADD COLUMN seq bigserial")
        else:
            self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {self.stage} AS SELECT {listed} "
                f"FROM main.{self.target} WHERE 0"
            )

    def missing(self, column: str, value: Any) -> list[int]:
        """Ids of the table's rows from before this load whose ``column`` is ``value`` and
        whose keys were not staged: what a complete read of them no longer holds (all of
        them, if none was)."""
        quote = self.quote
        sql = f"SELECT t.id FROM {self.target} t WHERE t.{quote(column)} = :value"
        if self.before is not None:  # rows merged already were read (ids grow)
            sql += f" AND t.id <= {self.before}"
        if self.names and self.dialect.name == "postgresql":  # a hash anti-join
            same = " AND ".join(f"s.{quote(k)} = t.{quote(k)}" for k in self.keys)
            sql += f" AND NOT EXISTS (SELECT 1 FROM {self.stage} s WHERE {same})"
        elif self.names:  # SQLite builds one temporary index of the list (NOT EXISTS would scan)
            keys = ", ".join(quote(k) for k in self.keys)
            sql += f" AND ({', '.join(f't.{quote(k)}' for k in self.keys)}) NOT IN "
            sql += f"(SELECT {keys} FROM {self.stage})"
        return list(self.conn.execute(text(sql), {"value": value}).scalars())

    def merge(self, final: bool = True) -> int:
        """Merge the rows added since the last merge into the table; returns how many rows it
        inserted or changed. The final merge builds dropped indexes again and drops the
        stage (add nothing after it)."""
        if not self.names:
            return 0
        names = ", ".join(self.quote(c) for c in self.names)
        keys = ", ".join(self.quote(k) for k in self.keys)
        pg = self.dialect.name == "postgresql"
        order = "seq" if pg else "rowid"
        new = f"{self.stage} WHERE {order} > {self.merged}"
        if not keys:
            rows, conflict = f"SELECT {names} FROM {new} ORDER BY {order}", ""
        elif pg:  # one INSERT ... SELECT may not touch a row twice
            last = " DESC" if self.action.startswith("DO UPDATE") else ""
            rows = (
                f"SELECT {names} FROM (SELECT DISTINCT ON ({keys}) {names}, first FROM "
                f"(SELECT *, min(seq) OVER (PARTITION BY {keys}) AS first FROM {new}) s "
                f"ORDER BY {keys}, seq{last}) d ORDER BY first"
            )
            conflict = f" ON CONFLICT ({keys}) {self.action}"
        else:  # rows are upserted one after the other (a WHERE: SQLite's upsert syntax)
            rows = f"SELECT {names} FROM {new} ORDER BY rowid"
            conflict = f" ON CONFLICT ({keys}) {self.action}"
        unique = None
        if not self.merged:
            if not final and "id" in self.table.c:  # a complete read is checked after it
                highest = f"SELECT max(id) FROM {self.target}"
                self.before = self.conn.exec_driver_sql(highest).scalar_one() or 0
            held = self.conn.exec_driver_sql(
                f"SELECT count(*) FROM (SELECT 1 FROM {self.target} "
                f"LIMIT {max(self.count // 2, 1)}) t"
            ).scalar_one()
            if held < self.count // 2:
                self.dropped = [i for i in self.table.indexes if not i.unique]
            for index in self.dropped:
                self.conn.exec_driver_sql(f"DROP INDEX {self.quote(str(index.name))}")
            unique = self._key_constraint() if final and held == 0 and conflict else None
            if pg:  # the DISTINCT ON and index sorts, in memory
                self.conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
                self.conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
            else:  # until the connection goes back to its pool
                self.conn.exec_driver_sql(f"PRAGMA main.cache_size = -{MERGE_CACHE_KIB}")
        if unique:
            self.conn.exec_driver_sql(f"ALTER TABLE {self.target} DROP CONSTRAINT {unique}")
            conflict = ""
        written = self.conn.exec_driver_sql(f"INSERT INTO {self.target} ({names}) {rows}{conflict}")
        self.merged = self.count
        if unique:
            self.conn.exec_driver_sql(
                f"ALTER TABLE {self.target} ADD CONSTRAINT {unique} UNIQUE ({keys})"
            )
        if final:
            if not pg:  # the pages back before the index sorts (their memory follows the cache)
                self.conn.exec_driver_sql(f"PRAGMA main.cache_size = -{CACHE_KIB}")
            for index in self.dropped:
                index.create(self.conn)
            self.conn.exec_driver_sql(f"DROP TABLE {self.stage}")
            self.names, self.dropped, self.count, self.merged = [], [], 0, 0
            self.before = None
        return int(written.rowcount)

    def _key_constraint(self) -> str | None:
        """PostgreSQL: the quoted name of the unique constraint on exactly the keys."""
        if self.dialect.name != "postgresql":
            return None  # SQLite cannot drop a table's constraint
        for constraint in inspect(self.conn).get_unique_constraints(self.table.name):
            if constraint["column_names"] == self.keys and constraint["name"]:
                return str(self.quote(constraint["name"]))
        return None


def _execute_many(
    session: Session,
    model: type[SQLModel],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    keys: Sequence[str] = (),
    action: str = "",
) -> None:
    """INSERT ``rows`` (tuples of the ``columns``' values), set-based: on SQLite one DB-API
    ``executemany`` (one prepared statement), on PostgreSQL through :class:`Staged`. With
    ``keys``, ``ON CONFLICT (keys) action`` is added; rows repeating a key behave as one after
    the other: the last one given wins an update, the first one a DO NOTHING."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        staged = Staged(session, model, columns, keys, action)
        staged.add(rows)
        staged.merge()
        return
    table = table_of(model)
    quote = dialect.identifier_preparer.quote
    conflict = f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) {action}" if keys else ""
    names, tuples = _bound_columns(table, dialect, columns, rows)
    marks = ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * len(names))
    listed = ", ".join(quote(c) for c in names)
    sql = f"INSERT INTO {quote(table.name)} ({listed}) VALUES ({marks}){conflict}"
    session.connection().exec_driver_sql(sql, tuples)


def _values(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Dict rows (all with the keys of the first) as their column names and value tuples."""
    columns = list(rows[0])
    if len(columns) == 1:
        return columns, [(row[columns[0]],) for row in rows]
    return columns, list(map(itemgetter(*columns), rows))


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
    action = upsert_action(dialect, table_of(table).name, columns, keys)
    _execute_many(session, table, columns, rows, keys, action)


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
