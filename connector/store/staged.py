"""Rows staged and merged into a table at any size (:class:`Staged`): what a source's load
and every set-based write go through."""

from __future__ import annotations

import os
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Index, Table, inspect, literal, text
from sqlalchemy.exc import StatementError
from sqlalchemy.schema import CreateIndex
from sqlmodel import Session, SQLModel

from connector.kernel.batches import chunks
from connector.kernel.errors import ClosedloopError
from connector.store.database import CACHE_KIB, table_of
from connector.store.keyfilter import KeyFilter

# SQLite pages a merge may keep: loaded into a table that holds rows, the key's index of a
# 10M-row table grows at random places (1 GiB halves the time of such a merge against 256 MiB);
# given back at the final merge, or with the connection.
MERGE_CACHE_KIB = 1024 * 1024
# SQLite sorts an index's keys in runs the size of its page cache, then merges them: runs of
# 8 MiB sort 3-4x faster than 256 MiB ones (10M touch times: 5.3 s against 20.8 s), and
# helper threads (one per core) take a (source, key) index from 9.9 s to 7.4 s.
SORT_CACHE_KIB = 8 * 1024
SUSPECTS_LISTED = 10_000  # ids of rows a load suspects of repeating a key, read a statement
# Bound values a load remembers per column (see bound_rows): a day of touch times to the second.
BOUND_KEPT = 100_000


def bound_rows(
    table: Table,
    dialect: Any,
    given: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    done: dict[str, dict[Any, Any]] | None = None,
) -> Sequence[tuple[Any, ...]]:
    """``rows`` (tuples of the ``given`` columns' values) as the DB-API takes them: each value
    through its column type's bind processor, as SQLAlchemy's own executemany does, without
    its per-row parameter handling. A processor runs once per distinct value (touch times
    repeat), remembered in ``done`` (column -> value -> bound, up to :data:`BOUND_KEPT` values a
    column) across the batches of a load; only the columns that have one are rebuilt."""
    unknown = [c for c in given if c not in table.c]
    if unknown:
        raise ClosedloopError(f"{table.name} has no column {unknown[0]!r}")
    if rows and len(rows[0]) != len(given):
        raise ClosedloopError(f"{table.name}: expected {len(given)} values per row")
    for at, column in enumerate(table.c[c] for c in given):
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if process:
            known = {} if done is None else done.setdefault(column.key, {})
            if len(known) > BOUND_KEPT:
                known.clear()
            try:
                values = [
                    known[v] if v in known else known.setdefault(v, process(v))
                    for v in map(itemgetter(at), rows)
                ]
            except Exception as exc:  # a value the column type refuses: as SQLAlchemy says
                raise StatementError(str(exc), f"INSERT INTO {table.name}", None, exc) from exc
            rows = [(*r[:at], v, *r[at + 1 :]) for r, v in zip(rows, values, strict=True)]
    return rows


def default_literals(table: Table, dialect: Any, given: Sequence[str]) -> dict[str, str]:
    """The columns not given that have a Python-side default: name -> the default as a SQL
    literal (written into the statement, not bound with every row)."""
    found = {}
    for column in table.c:
        if column.key in given or column.default is None:
            continue
        if not column.default.is_scalar:
            raise ClosedloopError(f"{table.name}: give every column with a computed default")
        value = literal(column.default.arg, column.type)  # type: ignore[attr-defined]
        found[column.key] = str(
            value.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        )
    return found


def upsert_action(dialect: Any, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
    """The ON CONFLICT action of an upsert of ``columns`` on ``keys``: update the others, in
    the rows where one of them differs (a re-read of unchanged rows writes nothing: no row
    rewritten, no index entry moved)."""
    quote = dialect.identifier_preparer.quote
    others = [c for c in columns if c not in keys]
    if not others:
        return "DO NOTHING"
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in others)
    return f"DO UPDATE SET {updates} WHERE {differ(dialect, quote(table), 'excluded', others)}"


def differ(dialect: Any, left: str, right: str, columns: Sequence[str]) -> str:
    """SQL true where rows ``left`` and ``right`` differ in a column (two NULLs do not)."""
    quote = dialect.identifier_preparer.quote
    op = "IS DISTINCT FROM" if dialect.name == "postgresql" else "IS NOT"
    return " OR ".join(f"{left}.{quote(c)} {op} {right}.{quote(c)}" for c in columns)


class Staged:
    """Rows on their way into ``model``'s table, set-based at any size.

    :meth:`add` appends batches (tuples of the ``columns``' values) to a temporary table with
    no key or index (one DB-API ``executemany`` on SQLite, binary ``COPY`` on PostgreSQL), memory
    bounded by the batch; :meth:`merge` moves the rows added since the last merge into the
    table in one ``INSERT ... SELECT``, in the order they were given: new rows get ids in read
    order on every backend (journeys order touches at one moment by id, so same-day rows of a
    file keep the file's order). With ``keys``, rows are upserted (:func:`upsert_action`: the
    other columns given are updated, a column left to its default keeps its stored value);
    rows repeating a key behave as one after the other: the last one given wins, in the place
    of the first. Nothing reaches the table before a merge, and nothing is committed here.

    A load into an empty table drops the keys' unique index (or, on PostgreSQL, constraint)
    at its first merge and builds it at the final one: one sort instead of an insert at a
    random place per row (and PostgreSQL's speculative inserts, 4x a plain one). Its stage
    then holds one batch at a time (the table held no row a complete read could miss), its
    rows get their ids in the order read (on PostgreSQL, after its sequence's last, which is
    moved past them), and the rows that repeat a key are made one just before the index is
    built: the ones :class:`KeyFilter` suspects, read by id. A load into a table of fewer rows
    than half its first batch drops the plain indexes too (SQLite only those led by a column
    the load gives: one led by a defaulted column grows at its end). All of it in the
    transaction: a rollback keeps the indexes.
    """

    def __init__(
        self,
        session: Session,
        model: type[SQLModel],
        columns: Sequence[str],
        keys: Sequence[str] = (),
    ) -> None:
        self.table, self.columns, self.keys = table_of(model), list(columns), list(keys)
        self.conn = session.connection()
        self.dialect = self.conn.dialect
        self.action = upsert_action(self.dialect, self.table.name, columns, keys)
        self.quote = self.dialect.identifier_preparer.quote
        self.target = self.quote(self.table.name)
        self.stage = self.quote(f"stage_{self.table.name}")
        self.order = "seq" if self.dialect.name == "postgresql" else "rowid"  # of the stage
        self.defaults = default_literals(self.table, self.dialect, self.columns)
        self.bound: dict[str, dict[Any, Any]] = {}  # see bound_rows
        self.created = False  # the stage (of the columns given)
        self.types: list[int] = []
        self.count = 0  # rows staged (the stage's rowid / seq of the last)
        self.merged = 0  # rows merged (ditto)
        self.dropped: list[Index] = []  # plain indexes to build again at the final merge
        self.unkeyed = ""  # the statement that builds the keys' unique index again, if dropped
        # The keys given, to find the rows that repeat one; kept until the first merge tells
        # whether the key is dropped, and only then.
        self.filter = KeyFilter() if keys else None
        self.decided = False  # the first merge is done
        self.base = 0  # with the key dropped: the id before the load's first row
        self.before: int | None = None  # the table's last id before the first merge

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        tuples = bound_rows(self.table, self.dialect, self.columns, rows, self.bound)
        listed = ", ".join(self.quote(c) for c in self.columns)
        if not self.created:
            self._create(listed)
        if self.filter is not None:
            pick = itemgetter(*(self.columns.index(k) for k in self.keys))
            self.filter.maybe_seen(map(pick, tuples), len(tuples))
        self.count += len(tuples)
        if self.dialect.name == "postgresql":  # binary: 1/5 of the client's CPU of text
            cursor: Any = self.conn.connection.cursor()
            try:
                with cursor.copy(
                    f"COPY {self.stage} ({listed}) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(self.types)
                    for row in tuples:
                        copy.write_row(row)
            finally:
                cursor.close()
        else:
            marks = ", ".join(
                ["?" if self.dialect.paramstyle == "qmark" else "%s"] * len(tuples[0])
            )
            self.conn.exec_driver_sql(f"INSERT INTO {self.stage} VALUES ({marks})", tuples)

    def _create(self, listed: str) -> None:
        self.created = True
        # pysqlite runs DDL outside its transaction: a stage of a stream that failed on this
        # (pooled) connection may still be there
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.stage}")
        if self.dialect.name == "postgresql":
            self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {self.stage} AS SELECT {listed} FROM {self.target} "
                "WITH NO DATA"
            )  # seq: the order rows were given in (SQLite's rowid), each merge's range
            self.conn.exec_driver_sql(
                f"ALTER TABLE {self.stage} ADD COLUMN seq bigserial PRIMARY KEY"
            )
            self.types = list(  # the columns' type oids, for binary COPY
                self.conn.exec_driver_sql(
                    "SELECT atttypid FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    (self.stage,),
                ).scalars()
            )[: len(self.columns)]
        else:
            self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {self.stage} AS SELECT {listed} "
                f"FROM main.{self.target} WHERE 0"
            )

    def missing(self, column: str, value: Any) -> list[int]:
        """Ids of the table's rows from before this load whose ``column`` is ``value`` and
        whose keys were not staged: what a complete read of them no longer holds (all of
        them, if none was)."""
        if self.unkeyed:  # the table was empty
            return []
        quote = self.quote
        sql = f"SELECT t.id FROM {self.target} t WHERE t.{quote(column)} = :value"
        if self.before is not None:  # rows merged already were read (ids grow)
            sql += f" AND t.id <= {self.before}"
        if self.created and self.dialect.name == "postgresql":  # a hash anti-join
            same = " AND ".join(f"s.{quote(k)} = t.{quote(k)}" for k in self.keys)
            sql += f" AND NOT EXISTS (SELECT 1 FROM {self.stage} s WHERE {same})"
        elif self.created:  # SQLite builds one temporary index of the list (NOT EXISTS would scan)
            keys = ", ".join(quote(k) for k in self.keys)
            sql += f" AND ({', '.join(f't.{quote(k)}' for k in self.keys)}) NOT IN "
            sql += f"(SELECT {keys} FROM {self.stage})"
        return list(self.conn.execute(text(sql), {"value": value}).scalars())

    def merge(self, final: bool = True) -> int:
        """Merge the rows added since the last merge into the table; returns how many rows it
        inserted or changed. The final merge builds dropped indexes again and drops the
        stage (add nothing after it)."""
        if not self.created:
            return 0
        pg = self.dialect.name == "postgresql"
        if not self.decided:
            self._first_merge(final)
        given = ", ".join(self.quote(c) for c in self.columns)  # the stage's
        names = ", ".join([given, *map(self.quote, self.defaults)])  # the table's
        values = ", ".join([given, *self.defaults.values()])
        keys = ", ".join(self.quote(k) for k in self.keys)
        # both ends: a stage is never analyzed, and PostgreSQL takes an open range of it for a
        # third of its rows, so scanned whole (each merge slower than the one before)
        new = f"{self.stage} WHERE {self.order} > {self.merged} AND {self.order} <= {self.count}"
        if self.unkeyed:  # the stage holds this batch alone, its rowid / seq from 1
            new = self.stage
            names, values = f"id, {names}", f"{self.base + self.merged} + {self.order}, {values}"
        rows, conflict = f"SELECT {values} FROM {new} ORDER BY {self.order}", ""
        if keys and not self.unkeyed:
            conflict = f" ON CONFLICT ({keys}) {self.action}"
            if pg:  # one INSERT ... SELECT may not touch a row twice
                last = " DESC" if self.action.startswith("DO UPDATE") else ""
                rows = (
                    f"SELECT {values} FROM (SELECT DISTINCT ON ({keys}) {given}, first FROM "
                    f"(SELECT *, min(seq) OVER (PARTITION BY {keys}) AS first FROM {new}) s "
                    f"ORDER BY {keys}, seq{last}) d ORDER BY first"
                )  # SQLite upserts the rows one after the other
        written = self.conn.exec_driver_sql(f"INSERT INTO {self.target} ({names}) {rows}{conflict}")
        self.merged = self.count
        if self.unkeyed and not final:
            empty = f"TRUNCATE {self.stage} RESTART IDENTITY" if pg else f"DELETE FROM {self.stage}"
            self.conn.exec_driver_sql(empty)
        if final:
            if self.unkeyed:  # with the merge's cache: the repeats are at random places
                self._merge_repeats()
            if not pg and (self.unkeyed or self.dropped):  # the merge's pages given back
                self._pages(SORT_CACHE_KIB, os.cpu_count() or 1)
            if self.unkeyed:
                self.conn.exec_driver_sql(self.unkeyed)
                if pg and self.merged:  # the ids given, taken from the sequence
                    self.conn.exec_driver_sql(
                        "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                        (self.table.name, self.base + self.merged),
                    )
            for index in self.dropped:
                index.create(self.conn)
            if not pg:
                self._pages(CACHE_KIB)
            self.conn.exec_driver_sql(f"DROP TABLE {self.stage}")
            self.created, self.dropped, self.count, self.merged = False, [], 0, 0
            self.unkeyed, self.before, self.filter, self.decided = "", None, None, False
        return int(written.rowcount)

    def _first_merge(self, final: bool) -> None:
        """What a load decides at its first merge, by the size of the table: which indexes it
        drops until the final merge (see the class)."""
        pg, self.decided = self.dialect.name == "postgresql", True
        if not final and "id" in self.table.c:  # a complete read is checked after it
            highest = f"SELECT max(id) FROM {self.target}"
            self.before = self.conn.exec_driver_sql(highest).scalar_one() or 0
        held = self.conn.exec_driver_sql(
            f"SELECT count(*) FROM (SELECT 1 FROM {self.target} LIMIT {max(self.count // 2, 1)}) t"
        ).scalar_one()
        if held < self.count // 2:
            # SQLite keeps an index led by a column left to its default: it grows at its end
            self.dropped = [
                i for i in self.table.indexes
                if not i.unique and (pg or next(iter(i.columns)).key in self.columns)
            ]  # fmt: skip
        for index in self.dropped:
            self.conn.exec_driver_sql(f"DROP INDEX {self.quote(str(index.name))}")
        if held == 0 and self.keys and "id" in self.table.c:
            self.unkeyed = self._drop_key()
        if self.unkeyed and pg:  # ids go on from the sequence's
            self.base = self.conn.exec_driver_sql(
                "SELECT coalesce(pg_sequence_last_value("
                "pg_get_serial_sequence(%s, 'id')::regclass), 0)",
                (self.table.name,),
            ).scalar_one()
        if not self.unkeyed:
            self.filter = None
        if pg:  # the DISTINCT ON sort in memory (index builds keep the server's setting: a
            # 10M-key unique index took 14 s with its 64MB default, 17.6 s with 256MB)
            self.conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
        else:  # until the connection goes back to its pool
            self._pages(MERGE_CACHE_KIB)

    def _pages(self, cache_kib: int, sort_threads: int = 0) -> None:
        """SQLite's page cache and the threads its sorter may add (for the index builds)."""
        self.conn.exec_driver_sql(f"PRAGMA main.cache_size = -{cache_kib}")
        self.conn.exec_driver_sql(f"PRAGMA threads = {sort_threads}")

    def _drop_key(self) -> str:
        """Drop the keys' unique index (on PostgreSQL, or constraint); returns the statement
        that builds it again ('' if there is none that can be dropped)."""
        for index in self.table.indexes:
            if index.unique and [c.key for c in index.columns] == self.keys:
                self.conn.exec_driver_sql(f"DROP INDEX {self.quote(str(index.name))}")
                return str(CreateIndex(index).compile(dialect=self.dialect))
        if self.dialect.name != "postgresql":
            return ""  # SQLite cannot drop a table's constraint
        for constraint in inspect(self.conn).get_unique_constraints(self.table.name):
            if constraint["column_names"] == self.keys and constraint["name"]:
                name = self.quote(constraint["name"])
                keys = ", ".join(self.quote(k) for k in self.keys)
                self.conn.exec_driver_sql(f"ALTER TABLE {self.target} DROP CONSTRAINT {name}")
                return f"ALTER TABLE {self.target} ADD CONSTRAINT {name} UNIQUE ({keys})"
        return ""

    def _merge_repeats(self) -> None:
        """Rows merged while the key was dropped that repeat a key become one, as the upserts
        would have left them: the first row's id with the last one's values. Only the rows
        the filter suspects are read, by id."""
        assert self.filter is not None
        suspects = self.filter.suspects() + (self.base + 1)
        if not len(suspects):
            return
        quote, target, name = self.quote, self.target, self.table.name
        keys = ", ".join(quote(k) for k in self.keys)
        rows, groups = (quote(f"{t}_{name}") for t in ("suspects", "repeated"))
        for table in (rows, groups):
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        self.conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {rows} AS SELECT id, {keys} FROM {target} WHERE 1 = 0"
        )
        for part in chunks(suspects.tolist(), SUSPECTS_LISTED):
            listed = ", ".join(map(str, part))  # ids: integers of ours
            self.conn.exec_driver_sql(
                f"INSERT INTO {rows} SELECT id, {keys} FROM {target} WHERE id IN ({listed})"
            )
        self.conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {groups} AS SELECT min(id) AS first, max(id) AS last "
            f"FROM {rows} GROUP BY {keys}"
        )
        given = ", ".join(quote(c) for c in self.columns)
        changed = differ(self.dialect, target, "l", self.columns)
        self.conn.exec_driver_sql(  # (a row whose values are the same is not rewritten)
            f"UPDATE {target} SET ({given}) = (SELECT {given} FROM {target} l "
            f"WHERE l.id = g.last) FROM {groups} g WHERE {target}.id = g.first "
            f"AND g.first <> g.last AND EXISTS (SELECT 1 FROM {target} l "
            f"WHERE l.id = g.last AND ({changed}))"
        )
        self.conn.exec_driver_sql(
            f"DELETE FROM {target} WHERE id IN (SELECT id FROM {rows}) "
            f"AND id NOT IN (SELECT first FROM {groups})"
        )
        for table in (rows, groups):
            self.conn.exec_driver_sql(f"DROP TABLE {table}")
