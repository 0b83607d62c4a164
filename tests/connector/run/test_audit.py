"""The audit trail kept set-based: one INSERT per chunk, one UPDATE per batch, found by index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import Session, select

from connector.kernel.records import WriteResult
from connector.run import audit
from connector.run.writeback import settle_batch
from connector.store import models
from connector.store.database import table_of


def rows(run_id: int, records: int, fields: int = 3) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "crm_object": "contacts", "record_id": str(r), "field": f"f{f}",
         "old_value": None, "new_value": f"v{r}.{f}"}
        for r in range(records)
        for f in range(fields)
    ]  # fmt: skip


def statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql.split()[0].upper())

    return seen


def outcome(engine: Engine) -> dict[tuple[int, str], set[tuple[str, str]]]:
    with Session(engine) as session:
        found = session.exec(select(models.FieldWrite)).all()
    out: dict[tuple[int, str], set[tuple[str, str]]] = {}
    for w in found:
        out.setdefault((w.run_id, w.record_id), set()).add((w.status, w.error))
    return out


def test_a_batch_is_inserted_and_settled_in_one_statement_each(engine: Engine) -> None:
    audit.record(engine, rows(1, 150))
    seen = statements(engine)
    results = [
        WriteResult(str(r), ok=r != 7, error="" if r != 7 else "BAD: no") for r in range(100)
    ]
    with Session(engine) as session:
        settle_batch(session, 2, "contacts", results)  # another run's rows: none settled
        settle_batch(session, 1, "deals", results)  # another object's: none settled
        settle_batch(session, 1, "contacts", results)
        session.commit()
    assert seen.count("UPDATE") == 3
    found = outcome(engine)
    assert found[(1, "7")] == {("failed", "BAD: no")}
    assert all(found[(1, str(r))] == {("ok", "")} for r in range(100) if r != 7)
    assert all(found[(1, str(r))] == {("pending", "")} for r in range(100, 150))


def test_settling_leaves_earlier_runs_and_settled_rows_alone(engine: Engine) -> None:
    audit.record(engine, rows(1, 5))
    audit.record(engine, rows(2, 5))
    with Session(engine) as session:
        audit.settle(session, 2, [("1", False, "first")])
        audit.settle(session, 2, [("1", True, ""), ("2", True, "")])  # 1 is settled already
        session.commit()
    found = outcome(engine)
    assert found[(2, "1")] == {("failed", "first")}
    assert found[(2, "2")] == {("ok", "")}
    assert found[(1, "1")] == found[(1, "2")] == {("pending", "")}


def test_a_settle_looks_its_records_up_instead_of_scanning_the_run(engine: Engine) -> None:
    """The plan a backend picks right after a run's rows went in (PostgreSQL re-samples then)."""
    audit.record(engine, rows(1, 1000))
    audit.record(engine, rows(2, 1000))
    fw = table_of(models.FieldWrite)
    stmt = (
        fw.update()
        .where(fw.c.run_id == 2, fw.c.record_id.in_(["1", "2"]), fw.c.status == "pending")
        .values(status="ok")
    )
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN" if engine.dialect.name == "sqlite" else "EXPLAIN"
    with engine.connect() as conn:
        plan = [str(r[-1]) for r in conn.exec_driver_sql(f"{explain} {sql}")]
    lookups = [line for line in plan if "USING INDEX" in line or "Index Cond" in line]
    assert lookups and all("record_id" in line for line in lookups), plan
