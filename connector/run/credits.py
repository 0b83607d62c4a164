"""The ``credit`` table rewritten by each attribute step: a fresh table filled in its key order,
then put in place of the old one.

The models that credit most touches are staged one row per journey touch carrying their
fractions, and copied model by model with one set-based ``INSERT ... SELECT`` each; a model
crediting at most one touch per journey is sent as its rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Column, MetaData, Table
from sqlalchemy.schema import CreateTable
from sqlmodel import Session

from connector.attribution import MODELS, Journeys
from connector.store import models
from connector.store.database import CACHE_KIB, table_of

if TYPE_CHECKING:
    from connector.run.attribute import Deals

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
BATCH = 50_000  # staged rows made at a time
NEXT = "credit_next"


def write_credits(
    session: Session,
    journeys: Journeys,
    touch_ids: Int,
    deals: Deals,
    credits: Mapping[str, Float],
) -> int:
    """Replace the ``credit`` rows: one per (model, deal, touch) with a positive fraction.

    ``credits`` maps a model to its credit per journey touch. The rows go, model by model in
    code order and each in (deal, touch) order, into a fresh table, which then replaces
    ``credit`` (dropping a table is far cheaper than deleting its rows one by one from the table
    and its key). So they arrive in key order: SQLite appends them to the table's B-tree,
    PostgreSQL builds the key once they are all in. The fractions of the models that credit
    most touches are staged in a temporary table, one row per touch, and copied by one
    ``INSERT ... SELECT`` per model; a model crediting at most one touch per journey (first,
    last, last non-direct touch) is sent as its rows, a fraction of the stage's size.
    Returns the rows written.
    """
    if unknown := [name for name in credits if name not in MODELS]:
        raise ValueError(f"unknown attribution model {unknown[0]!r}")
    names = sorted(credits, key=models.credit_model_code)
    _fresh_credit_table(session)
    if journeys.n_touches == 0 or not names:
        _swap_in_credit_table(session)
        return 0
    deal_of = journeys.journey_of_touch
    order = np.lexsort((touch_ids, deal_of))
    sparse = {n for n in names if np.count_nonzero(credits[n] > 0) <= journeys.n_journeys}
    staged = {n: f"f{i}" for i, n in enumerate(n for n in names if n not in sparse)}
    conn = session.connection()
    if conn.dialect.name == "sqlite":  # the stage is read once per model: keep it in memory
        conn.exec_driver_sql(f"PRAGMA temp.cache_size = -{CACHE_KIB}")
    cursor: Any = conn.connection.cursor()
    written = 0
    try:
        if staged:
            # pysqlite runs DDL outside its transaction: a failed run's stage may still be there
            cursor.execute("DROP TABLE IF EXISTS credit_stage")
            cursor.execute(
                "CREATE TEMPORARY TABLE credit_stage (deal_id BIGINT NOT NULL, "
                "touchpoint_id BIGINT NOT NULL, amount DOUBLE PRECISION NOT NULL, "
                + ", ".join(f"{f} DOUBLE PRECISION NOT NULL" for f in staged.values())
                + ")"
            )
            batches = (
                zip(
                    deals.id[deal_of[part]].tolist(),
                    touch_ids[part].tolist(),
                    deals.amount[deal_of[part]].tolist(),
                    *(credits[name][part].tolist() for name in staged),
                    strict=True,
                )
                for part in np.array_split(order, max(1, len(order) // BATCH))
            )
            _send(
                conn,
                cursor,
                "credit_stage",
                ["deal_id", "touchpoint_id", "amount", *staged.values()],
                batches,
            )
        for name in names:
            code = models.credit_model_code(name)
            if name in staged:
                f = staged[name]
                cursor.execute(
                    f"INSERT INTO {NEXT} (model, deal_id, touchpoint_id, fraction, amount) "
                    f"SELECT {code}, deal_id, touchpoint_id, {f}, {f} * amount "
                    f"FROM credit_stage WHERE {f} > 0"
                )
                written += int(cursor.rowcount)
                continue
            at = order[credits[name][order] > 0]
            share = credits[name][at]
            rows = zip(
                [code] * len(at),
                deals.id[deal_of[at]].tolist(),
                touch_ids[at].tolist(),
                share.tolist(),
                (share * deals.amount[deal_of[at]]).tolist(),  # as SQL computes it
                strict=True,
            )
            _send(
                conn,
                cursor,
                NEXT,
                ["model", "deal_id", "touchpoint_id", "fraction", "amount"],
                [rows],
            )
            written += len(at)
        if staged:
            _without_zeroing(session, "DROP TABLE credit_stage")
    finally:
        cursor.close()
    _swap_in_credit_table(session)
    return written


def _send(
    conn: Any,
    cursor: Any,
    table: str,
    columns: list[str],
    batches: Iterable[Iterable[Sequence[Any]]],
) -> None:
    """Rows into ``table``: COPY on PostgreSQL, elsewhere one ``executemany`` taking the rows
    as the batches make them (no list of a batch's tuples)."""
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for batch in batches:
                for row in batch:
                    copy.write_row(row)
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * len(columns))})"
    cursor.executemany(sql, chain.from_iterable(batches))  # rows as they are made


def _fresh_credit_table(session: Session) -> None:
    """An empty ``credit_next`` made as ``credit`` is, for one rewrite; one left by a killed
    run is dropped first. PostgreSQL's has no key yet (:func:`_swap_in_credit_table` adds it
    after the load); SQLite's is its key, appended to in key order."""
    conn = session.connection()
    credit = table_of(models.Credit)
    if conn.dialect.name == "postgresql":
        fresh = Table(NEXT, MetaData(), *(Column(c.name, c.type, nullable=False) for c in credit.c))
    else:
        fresh = credit.to_metadata(MetaData(), name=NEXT)
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {NEXT}")
    conn.execute(CreateTable(fresh))


def _swap_in_credit_table(session: Session) -> None:
    """``credit_next`` becomes ``credit`` in the run's transaction: readers see the old credits
    or the new, never a mix. PostgreSQL's key is built now, in one pass over the loaded rows,
    and given the name it had."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        key = ", ".join(c.name for c in table_of(models.Credit).primary_key.columns)
        conn.exec_driver_sql(f"ALTER TABLE {NEXT} ADD PRIMARY KEY ({key})")
    _without_zeroing(session, "DROP TABLE credit")
    conn.exec_driver_sql(f"ALTER TABLE {NEXT} RENAME TO credit")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ALTER INDEX {NEXT}_pkey RENAME TO credit_pkey")


def _without_zeroing(session: Session, drop: str) -> None:
    """Run ``drop`` with SQLite's ``secure_delete`` at FAST: builds that zero every freed page
    (Debian's, for one) would otherwise write the whole dropped table out again, for credit
    rows that hold only ids and numbers. The setting is put back afterwards."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql(drop)
        return
    (before,) = conn.exec_driver_sql("PRAGMA secure_delete").one()
    conn.exec_driver_sql("PRAGMA secure_delete = FAST")
    try:
        conn.exec_driver_sql(drop)
    finally:
        conn.exec_driver_sql(f"PRAGMA secure_delete = {('OFF', 'ON', 'FAST')[int(before)]}")
