"""Exactly once under failure: ``closedloop sync --only conversions`` killed (SIGKILL) at random
requests of the step, then run again, leaves every conversion accepted exactly once by each
ad platform emulator, and the same ledger as a run that was never killed."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select

from connector.demo.synthetic import Company, generate
from connector.run.sync import run_sync
from connector.store import models
from connector.store.database import make_engine
from tests.e2e.crm_loop import Loop, start_loop
from tests.e2e.test_conversions import PLATFORMS, accepted, emulator

ROOT = Path(__file__).resolve().parents[2]
BEFORE = ("extract", "match", "revenue", "attribute")


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=5, contacts=150, visits=1500, deals=40)


def prepare(loop: Loop, store: Path | None) -> None:
    """Small batches (more requests to kill at), and the store as the steps before left it."""
    path = loop.workdir / "mappings" / "conversions.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | {"batch_size": 4}))
    if store is not None:
        shutil.copy(store, loop.workdir / "closedloop.db")
        return
    ctx = loop.context()
    try:
        run_sync(ctx, steps=BEFORE)
    finally:
        ctx.close()


def conversions_only(loop: Loop) -> models.SyncRun:
    ctx = loop.context()
    try:
        return run_sync(ctx, only="conversions")
    finally:
        ctx.close()


def ledger(loop: Loop) -> set[tuple[str, str, str, str]]:
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        rows = session.exec(select(models.Conversion)).all()
    engine.dispose()
    return {(r.platform, r.dedup_id, r.status, r.contact_crm_id) for r in rows}


class KillAt:
    """Kills the process at the ``point``-th request the ad platforms receive (the emulators
    then answer it, or, when it must not have landed, drop it)."""

    def __init__(self, point: int, landed: bool) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.point, self.landed, self.seen = point, landed, 0

    def __call__(self, emu: Any) -> None:
        self.seen += 1
        if self.seen == self.point and self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()  # dead before this request is answered (or dropped)
            if not self.landed:
                emu.inject("drop", 1)


UPLOAD_PATHS = (
    ":uploadClickConversions",
    ":uploadConversionAdjustments",
    "/events",
    "/conversionEvents",
)


def duplicates_dropped(loop: Loop) -> int:
    """Conversions a platform received again and counted once (its dedup on our ids)."""
    google = emulator(loop, "google_ads").rejected
    return (
        sum(r.reason == "ORDER_ID_ALREADY_IN_USE" for r in google)
        + sum(p.stats.deduplicated for p in emulator(loop, "meta_ads").pixels.values())
        + emulator(loop, "linkedin_ads").events_deduplicated
    )


def test_killed_at_random_points_every_conversion_is_accepted_exactly_once(
    tmp_path: Path, company: Company
) -> None:
    reference = start_loop(tmp_path / "reference", "hubspot", company)
    try:
        prepare(reference, None)
        shutil.copy(reference.workdir / "closedloop.db", tmp_path / "prepared.db")
        for platform in PLATFORMS:
            emulator(reference, platform).clear_log()
        run = conversions_only(reference)
        assert run.status == "succeeded", run.error
        expected, expected_ledger = accepted(reference), ledger(reference)
        sent = sorted(
            (r for p in PLATFORMS for r in emulator(reference, p).log), key=lambda r: r.at
        )
    finally:
        reference.systems.stop()
    uploads = [n for n, r in enumerate(sent, 1) if r.path.endswith(UPLOAD_PATHS)]
    assert all(expected.values()) and len(sent) >= 8 and len(uploads) >= 4, (expected, sent)
    # Half the kills land on an upload the platform then accepts (the re-run sends it again),
    # half anywhere, the request dropped (the re-run sends it for the first time).
    pick = random.Random(16)
    kills = [(point, True) for point in pick.sample(uploads, 4)]
    kills += [(point, False) for point in pick.sample(range(1, len(sent) + 1), 4)]
    resent = repeated = 0  # kills that left conversions unconfirmed / that the platforms saw twice
    for n, (point, landed) in enumerate(sorted(kills)):
        loop = start_loop(tmp_path / f"kill{n}", "hubspot", company)
        try:
            prepare(loop, tmp_path / "prepared.db")
            hook = KillAt(point, landed)  # in place before the process starts
            for platform in PLATFORMS:
                emu = emulator(loop, platform)
                emu.on_request = lambda req, emu=emu, hook=hook: hook(emu)
            config = str(loop.systems.config_path)
            proc = hook.proc = subprocess.Popen(
                [sys.executable, "-m", "connector.cli", "sync", "-c", config, "--only",
                 "conversions"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == -signal.SIGKILL, f"not killed at request {point}: {err}"
            for platform in PLATFORMS:
                emulator(loop, platform).on_request = None

            resent += any(status == "pending" for _, _, status, _ in ledger(loop))
            rerun = conversions_only(loop)
            assert rerun.status == "succeeded", (point, rerun.error)
            repeated += duplicates_dropped(loop)
            assert accepted(loop) == expected, f"killed at request {point}"
            assert ledger(loop) == expected_ledger, f"killed at request {point}"
        finally:
            loop.systems.stop()
    assert resent and repeated  # the kills did hit conversions in flight
