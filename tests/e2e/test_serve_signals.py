"""SIGTERM to `closedloop serve` at 50 random moments: while it starts, idles, extracts, writes.

One small set of emulators serves every round (the CRM is reset to its seed between rounds, so
each run writes again); each moment is picked by an emulator hook or a log line, not by timing
the service. Set CLOSEDLOOP_TEST_SEED to replay a failed series.
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, col, select

from connector.demo.synthetic import generate
from connector.store import models
from connector.store.database import make_engine
from tests.e2e.crm_loop import Loop, start_loop
from tests.e2e.test_service import edit_config, spawn

ROUNDS = 50
EXIT_BOUND = 30.0  # seconds from SIGTERM to exit: a hang, not a slow machine, exceeds it
MOMENTS = ("starting", "idle", "extracting", "writing")


class Service:
    """A `serve` process whose log lines are read as they come (JSON lines)."""

    def __init__(self, config: str) -> None:
        self.proc = spawn("serve", "-c", config)
        self.lines: list[str] = []
        self.ran = threading.Event()  # the run on start ended
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.signalled_at: float | None = None

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if '"message": "job hourly: run' in line:
                self.ran.set()

    def sigterm(self) -> None:
        if self.signalled_at is None and self.proc.poll() is None:
            self.signalled_at = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)

    def messages(self) -> list[str]:
        return [json.loads(line)["message"] for line in self.lines if line.startswith("{")]


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    company = generate(seed=5, contacts=30, visits=300, deals=8)
    running = start_loop(tmp_path_factory.mktemp("signals") / "demo", "hubspot", company)
    running.crm.ten_secondly = None  # 50 services in a row: no 429 pauses
    yield running
    running.systems.stop()


def run_ids(loop: Loop) -> list[tuple[int, str]]:
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        rows = session.exec(select(models.SyncRun).order_by(col(models.SyncRun.id))).all()
        pending = session.exec(
            select(models.FieldWrite).where(models.FieldWrite.status == "pending")
        )
        left = pending.all()
    engine.dispose()
    assert left == [], "a write left unsettled"
    return [(r.id or 0, r.status) for r in rows]


def restore(loop: Loop, seeded: dict[str, Any]) -> None:
    """The CRM back to its seeded values, as an import would put them back: every record
    modified now (a write-back reads back only records changed since its last write)."""
    with loop.crm._lock:
        loop.crm.objects = copy.deepcopy(seeded)
    for obj, records in seeded.items():
        for record_id in records:
            loop.crm.edit(obj, record_id)


def test_sigterm_at_any_moment_stops_serve_cleanly_and_quickly(loop: Loop) -> None:
    seed = int(os.environ.get("CLOSEDLOOP_TEST_SEED") or random.SystemRandom().randrange(10**6))
    rng = random.Random(seed)
    config = edit_config(loop, service={
        "port": 0, "log_format": "json", "shutdown_timeout_seconds": int(EXIT_BOUND) - 5,
        "jobs": [{"name": "hourly", "interval_minutes": 60, "run_on_start": True}],
    })  # fmt: skip
    seeded = copy.deepcopy(loop.crm.objects)
    loop.sync()  # the first, full read; every round after it reads the lookback window
    restore(loop, seeded)
    loop.ga4.clear_log()
    loop.crm.clear_log()
    loop.sync()
    ga4_calls, crm_writes = len(loop.ga4.log), len(loop.writes())
    assert ga4_calls >= 1 and crm_writes >= 1, (ga4_calls, crm_writes)
    seen: dict[str, int] = dict.fromkeys(MOMENTS, 0)
    for round_ in range(ROUNDS):
        moment = MOMENTS[round_ % len(MOMENTS)] if round_ < len(MOMENTS) else rng.choice(MOMENTS)
        where = f"round {round_} ({moment}), CLOSEDLOOP_TEST_SEED={seed}"
        restore(loop, seeded)  # values to write again
        before = run_ids(loop)
        service = Service(config)
        nth = {"ga4": rng.randint(1, ga4_calls), "crm": rng.randint(1, crm_writes)}

        def on_ga4(req: Any, nth: dict[str, int] = nth, service: Service = service) -> None:
            nth["ga4"] -= 1
            if nth["ga4"] == 0:
                service.sigterm()

        def on_crm(req: Any, nth: dict[str, int] = nth, service: Service = service) -> None:
            if req.path.endswith("/batch/update"):
                nth["crm"] -= 1
                if nth["crm"] == 0:
                    service.sigterm()

        loop.ga4.on_request = on_ga4 if moment == "extracting" else None
        loop.crm.on_request = on_crm if moment == "writing" else None
        try:
            if moment == "starting":
                time.sleep(rng.uniform(0, 1.5))  # anywhere in start-up: any moment will do
                service.sigterm()
            elif moment == "idle":
                assert service.ran.wait(120), f"{where}: no run ended\n{''.join(service.lines)}"
                time.sleep(rng.uniform(0, 0.3))
                service.sigterm()
            else:  # a hook sends it; a run that ended first leaves the signal for the idle time
                service.ran.wait(120)
                service.sigterm()
            assert service.signalled_at is not None
            service.proc.wait(timeout=EXIT_BOUND)
        except subprocess.TimeoutExpired:
            service.proc.kill()
            service.proc.wait()
            pytest.fail(f"{where}: serve did not exit within {EXIT_BOUND}s of SIGTERM")
        finally:
            loop.ga4.on_request = loop.crm.on_request = None
            service.reader.join(10)
            assert service.proc.stdout is not None
            service.proc.stdout.close()
            if service.proc.stderr is not None:
                service.proc.stderr.close()
        took = time.monotonic() - service.signalled_at
        assert took < EXIT_BOUND, where
        assert loop.crm.wait_idle() and loop.ga4.wait_idle()
        code, messages = service.proc.returncode, service.messages()
        if code == -signal.SIGTERM:  # before Python had set its handler: nothing had started
            assert moment == "starting" and not service.lines, f"{where}: {service.lines}"
        else:
            assert code == 0, f"{where}: exit {code}\n{''.join(service.lines)}"
            assert messages[-1] == "stopped", f"{where}: {messages}"
            assert any(m.startswith("stopping") for m in messages), where
        new = [status for run_id, status in run_ids(loop) if (run_id, status) not in before]
        assert len(new) <= 1 and set(new) <= {"succeeded", "interrupted"}, f"{where}: {new}"
        if moment in {"extracting", "writing"} and nth["ga4" if moment == "extracting" else "crm"]:
            moment = "idle"  # the hook never fired: the signal came after the run
        seen[moment] += 1
    assert all(seen.values()), seen  # every kind of moment was met
