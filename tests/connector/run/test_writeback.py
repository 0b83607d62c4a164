"""The write-back's audit rows: settled per object, looked up per object (ids may collide)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, select

from connector.kernel.records import WriteResult
from connector.run.writeback import last_written, settle_batch
from connector.store import models


def audit_row(obj: str, record: str, field: str, new: str, status: str = "pending") -> object:
    return models.FieldWrite(
        run_id=1, crm_object=obj, record_id=record, field=field, new_value=new, status=status
    )


def statuses(engine: Engine) -> dict[tuple[str, str], tuple[str, str]]:
    with Session(engine) as session:
        rows = session.exec(select(models.FieldWrite)).all()
    return {(r.crm_object, r.record_id): (r.status, r.error) for r in rows}


def test_a_deal_batch_does_not_settle_the_contact_with_the_same_id(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(audit_row("contacts", "123", "cl_touch_count", "4"))
        session.add(audit_row("deals", "123", "cl_touch_count", "9"))
        session.commit()
        settle_batch(session, 1, "deals", [WriteResult("123", False, "VALIDATION_ERROR")])
        session.commit()
    assert statuses(engine) == {
        ("contacts", "123"): ("pending", ""),
        ("deals", "123"): ("failed", "VALIDATION_ERROR"),
    }
    with Session(engine) as session:
        settle_batch(session, 1, "contacts", [WriteResult("123", True)])
        session.commit()
    assert statuses(engine)[("contacts", "123")] == ("ok", "")
    assert statuses(engine)[("deals", "123")] == ("failed", "VALIDATION_ERROR")


def test_last_written_value_is_looked_up_per_object(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(audit_row("contacts", "7", "cl_first_touch_channel", "Email", "ok"))
        session.add(audit_row("deals", "7", "cl_first_touch_channel", "Paid Search", "ok"))
        session.commit()
        last = last_written(session)
    assert last[("contacts", "7", "cl_first_touch_channel")] == "Email"
    assert last[("deals", "7", "cl_first_touch_channel")] == "Paid Search"
