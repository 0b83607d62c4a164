"""The audit after a killed run: its unconfirmed writes are settled against the same CRM read the
next plan uses, so a value that lands late (after its run died) is never left without an `ok`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from connector.demo.synthetic import Company, generate
from connector.kernel.timeutil import utcnow
from connector.store import models
from connector.store.database import make_engine
from tests.e2e.crm_loop import Loop, start_loop

FIELD = "cl_last_touch_channel"


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=8, contacts=40, visits=400, deals=8)


@pytest.fixture
def loop(tmp_path: Path, company: Company) -> Iterator[Loop]:
    running = start_loop(tmp_path / "demo", "hubspot", company)
    yield running
    running.systems.stop()


def writes(loop: Loop) -> list[models.FieldWrite]:
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        found = list(session.exec(select(models.FieldWrite).order_by(col(models.FieldWrite.id))))
    engine.dispose()
    return found


def killed_run_left(loop: Loop, landed: str, unsent: str) -> tuple[int, str, str]:
    """After a first sync: a killed run that recorded two writes; ``landed``'s value reached
    the CRM, ``unsent``'s did not (the CRM holds a person's older value)."""
    state = loop.crm_state()
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        run = models.SyncRun(job="sync", started_at=utcnow())
        session.add(run)
        session.commit()
        assert run.id is not None
        for rid in (landed, unsent):
            value = state[rid][FIELD]
            session.add(
                models.FieldWrite(
                    run_id=run.id,
                    crm_object="contacts",
                    record_id=rid,
                    field=FIELD,
                    old_value="Old",
                    new_value=value,
                )
            )
        session.commit()
        run_id = run.id
    engine.dispose()
    loop.probe.edit(unsent, **{FIELD: "Old"})
    return run_id, state[landed][FIELD], state[unsent][FIELD]


@pytest.mark.parametrize(
    "lands_on", [None, ("read", 1), ("read", 2), ("read", 3), ("update", 1), ("update", 2)]
)
def test_a_value_landing_at_any_point_of_the_rerun_ends_with_a_true_audit(
    loop: Loop, lands_on: tuple[str, int] | None
) -> None:
    """``lands_on``: the rerun's n-th batch read or update before which the killed run's
    in-flight value finally reaches the CRM (None: it never does)."""
    loop.sync()
    ids = sorted(loop.crm_state())
    landed, unsent = ids[0], ids[1]
    killed, landed_value, unsent_value = killed_run_left(loop, landed, unsent)
    seen = {"read": 0, "update": 0}

    def late_landing(req: Any) -> None:
        kind = req.path.rpartition("/batch/")[2]
        if kind in seen:
            seen[kind] += 1
            if (kind, seen[kind]) == lands_on:
                loop.probe.edit(unsent, **{FIELD: unsent_value})

    loop.crm.on_request = late_landing
    loop.crm.clear_log()
    _, rerun = loop.sync()
    loop.crm.on_request = None
    assert rerun.status == "succeeded", rerun.error
    assert loop.crm_state()[unsent][FIELD] == unsent_value
    audit = writes(loop)
    mine = {w.record_id: w for w in audit if w.run_id == killed}
    assert mine[landed].status == "ok"  # found in the CRM: confirmed, not sent again
    assert mine[unsent].status in {"ok", "not_applied"}
    resent = [w for w in audit if w.run_id == rerun.id and w.record_id == unsent]
    if mine[unsent].status == "not_applied":  # it was missing at the read: the rerun sent it
        assert [(w.field, w.new_value, w.status) for w in resent] == [(FIELD, unsent_value, "ok")]
    else:
        assert resent == []
    assert not [w for w in audit if w.run_id == rerun.id and w.record_id == landed]
    # whatever the moment, the CRM's values each have an `ok` row saying closedloop wrote them
    ok = {(w.record_id, w.field, w.new_value) for w in audit if w.status == "ok"}
    assert {(landed, FIELD, landed_value), (unsent, FIELD, unsent_value)} <= ok
    assert not [w for w in audit if w.status == "pending"]
