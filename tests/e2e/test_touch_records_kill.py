"""A sync killed (SIGKILL, a real process) at every write of touchpoint records re-runs to the
same records in the CRM and the same audit as a run that was never killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from connector.demo.synthetic import Company, generate
from connector.store import models
from connector.store.database import make_engine
from tests.e2e.crm_loop import Loop, start_loop
from tests.e2e.test_service import edit_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=9, contacts=40, visits=400, deals=10)


def audit(loop: Loop) -> set[tuple[str, str, str | None]]:
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        rows = session.exec(select(models.FieldWrite).where(models.FieldWrite.status == "ok")).all()
    engine.dispose()
    return {(r.record_id, r.field, r.new_value) for r in rows}


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_killed_while_writing_touchpoint_records_reruns_to_the_same_end(
    tmp_path: Path, company: Company, crm: str
) -> None:
    reference = start_loop(tmp_path / "reference", crm, company, touchpoint_records=True)
    try:
        edit_config(reference)
        reference.sync()
        expected, expected_audit = reference.probe.touch_records(), audit(reference)
        paths = [r.path for r in reference.probe.touch_writes()]
    finally:
        reference.systems.stop()
    assert len(expected) > 100 and len(paths) >= 2
    settled: list[int] = []  # pending records each rerun settled (the killed run's batches)
    for point in range(1, len(paths) + 1):
        loop = start_loop(tmp_path / f"kill{point}", crm, company, touchpoint_records=True)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "connector.cli", "sync", "-c", edit_config(loop)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            seen = {"n": 0}

            def kill_at(
                req: Any, point: int = point, proc: Any = proc, seen: Any = seen, loop: Loop = loop
            ) -> None:
                if req in loop.probe.touch_writes():
                    seen["n"] += 1
                    if seen["n"] == point:  # dead before this request lands: never confirmed
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait()

            loop.crm.on_request = kill_at
            proc.communicate(timeout=180)
            assert proc.returncode == -signal.SIGKILL, f"not killed at touch write {point}"
            loop.crm.on_request = None
            ctx, rerun = loop.sync()
            assert rerun.status == "succeeded", (point, rerun.error)
            settled.append(ctx.counts.get("touch_records_reconciled", 0))
            assert loop.probe.touch_records() == expected, f"killed at touch write {point}"
            assert audit(loop) == expected_audit, f"killed at touch write {point}"
        finally:
            loop.systems.stop()
    # a kill after the records were audited left pending writes for the rerun to settle
    records = [n for n, path in zip(settled, paths, strict=True) if "/schemas" not in path]
    assert records and all(records), (settled, paths)
