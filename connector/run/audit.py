"""The audit trail of CRM writes (``field_write``), kept set-based so a run's cost stays linear.

Every change is inserted ``pending`` before it is sent (one ``executemany`` per chunk) and settled
``ok`` or ``failed`` when its batch comes back (one ``UPDATE`` per batch, on this run's rows of
the batch's records: the ``(run_id, record_id)`` index finds them without scanning the
run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, case, literal, update
from sqlmodel import Session

from connector.kernel.batches import chunks
from connector.store import models
from connector.store.database import table_of
from connector.store.writes import insert_rows

INSERT_CHUNK = 5000  # rows per executemany
SETTLE_CHUNK = 500  # records per UPDATE: far below every backend's bound-parameter limit


def record(bind: Engine | Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert audit rows (``run_id, crm_object, record_id, field, old_value, new_value``), all
    ``pending``, and commit them: nothing is sent before its row is in the store.

    PostgreSQL then re-samples the table: without fresh statistics its planner takes a new run
    for a handful of rows and settles each batch by scanning the whole run (``run_id`` alone)
    instead of looking up the batch's records."""
    with Session(bind) as session:
        for part in chunks(rows, INSERT_CHUNK):
            insert_rows(session, models.FieldWrite, part)
        session.commit()
        if rows and bind.dialect.name == "postgresql":
            session.connection().exec_driver_sql("ANALYZE field_write")
            session.commit()


def settle(
    session: Session,
    run_id: int,
    outcomes: Sequence[tuple[str, bool, str]],
    *where: ColumnElement[bool],
) -> None:
    """Mark the run's pending rows of each ``(record_id, ok, error)`` ``ok`` or ``failed`` (with
    its error), one statement per :data:`SETTLE_CHUNK` records; ``where`` narrows the rows (an
    object, or touchpoint records only)."""
    fw = table_of(models.FieldWrite)
    for part in chunks(outcomes, SETTLE_CHUNK):
        failed = {rid: error for rid, ok, error in part if not ok}
        status: Any = literal("ok")
        error: Any = literal("")
        if failed:
            status = case((fw.c.record_id.in_(list(failed)), "failed"), else_="ok")
            error = case(failed, value=fw.c.record_id, else_="")
        session.execute(
            update(fw)
            .where(
                fw.c.run_id == run_id,
                fw.c.record_id.in_([rid for rid, _, _ in part]),
                fw.c.status == "pending",
                *where,
            )
            .values(status=status, error=error)
        )
