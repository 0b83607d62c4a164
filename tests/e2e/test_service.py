"""closedloop as an admin runs it: real processes, signals, the store lock, kills at any point."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select

from connector.demo.synthetic import Company, generate
from connector.store import models
from connector.store.database import make_engine
from tests.e2e.crm_loop import Loop, start_loop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=3, contacts=80, visits=800, deals=20)


def closedloop(*args: str) -> list[str]:
    return [sys.executable, "-m", "connector.cli", *args]


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(closedloop(*args), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def edit_config(loop: Loop, **sections: Any) -> str:
    """Keep only the GA4 and offline sources (fast runs; so no conversions to the ad platforms),
    and set config sections."""
    path = loop.systems.config_path
    config = yaml.safe_load(path.read_text())
    config["sources"] = [s for s in config["sources"] if s["kind"] in {"ga4", "csv_files"}]
    config["mappings"].pop("conversions", None)
    config.update(sections)
    path.write_text(yaml.safe_dump(config))
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def loop(tmp_path: Path, company: Company) -> Iterator[Loop]:
    running = start_loop(tmp_path / "demo", "hubspot", company)
    yield running
    running.systems.stop()


def audit(loop: Loop) -> set[tuple[str, str, str | None]]:
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        rows = session.exec(select(models.FieldWrite).where(models.FieldWrite.status == "ok")).all()
    engine.dispose()
    return {(r.record_id, r.field, r.new_value) for r in rows}


def runs(loop: Loop) -> list[models.SyncRun]:
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        found = list(session.exec(select(models.SyncRun).order_by(models.SyncRun.id)).all())
    engine.dispose()
    return found


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_serve_runs_jobs_serves_health_and_metrics_and_stops_on_sigterm(loop: Loop) -> None:
    port = free_port()
    config = edit_config(loop, service={
        "port": port, "log_format": "json",
        "jobs": [{"name": "hourly", "interval_minutes": 60, "run_on_start": True}],
    })  # fmt: skip
    proc = spawn("serve", "-c", config)
    try:
        deadline = time.monotonic() + 60
        body: dict[str, Any] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, text = get(f"http://127.0.0.1:{port}/healthz")
                body = json.loads(text)
                if (body.get("last_run") or {}).get("status") == "succeeded":
                    break
            except OSError:
                pass
            time.sleep(0.3)
        if body.get("status") != "ok" or not body.get("last_run"):
            proc.terminate()
            pytest.fail(f"serve never reported a finished run: {body}\n{proc.communicate()[1]}")
        assert body["last_run"]["job"] == "hourly", body
        assert body["jobs"][0]["id"] == "hourly" and body["jobs"][0]["next_run"]
        status, text = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert 'closedloop_runs_total{status="succeeded"} 1.0' in text
        assert 'closedloop_runs_total{status="failed"} 0.0' in text
        assert 'closedloop_run_duration_seconds_count{job="hourly"} 1.0' in text
        assert 'closedloop_runs_in_progress{job="hourly"} 0.0' in text
        assert 'closedloop_records_written_total{system="hubspot"}' in text
        assert 'closedloop_api_calls_total{system="ga4"}' in text
        assert "closedloop_last_success_timestamp_seconds" in text
        # the default steps write back last: the first run already gives won deals their summary
        summaries = loop.probe.deal_channels()
        assert summaries and any(summaries.values()), summaries
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - started
    assert proc.returncode == 0, err
    assert stopped_in < 10
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(line["message"] == "stopped" for line in lines)
    for secret in ("pat-na1-demo", "ya29.demo"):
        assert secret not in err + out


def test_metrics_are_there_from_start_up_at_zero(loop: Loop) -> None:
    port = free_port()
    config = edit_config(loop, service={
        "port": port, "jobs": [{"name": "nightly", "cron": "0 3 * * *"}],
    })  # fmt: skip
    proc = spawn("serve", "-c", config)
    try:
        deadline, text = time.monotonic() + 60, ""
        while time.monotonic() < deadline and proc.poll() is None and not text:
            try:
                text = get(f"http://127.0.0.1:{port}/metrics")[1]
            except OSError:
                time.sleep(0.2)  # not listening yet
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert text, err
    for status in ("succeeded", "failed", "incomplete", "interrupted", "killed"):
        assert f'closedloop_runs_total{{status="{status}"}} 0.0' in text
    assert 'closedloop_runs_in_progress{job="nightly"} 0.0' in text
    assert 'closedloop_run_duration_seconds_count{job="nightly"} 0.0' in text
    assert proc.returncode == 0, err


def test_a_port_in_use_stops_serve_before_any_job_runs(loop: Loop) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        job = {"name": "hourly", "interval_minutes": 60, "run_on_start": True}
        config = edit_config(loop, service={"port": port, "jobs": [job]})
        proc = spawn("serve", "-c", config)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert (
        "configuration error" in err and f"service.port: cannot listen on 127.0.0.1:{port}" in err
    )
    assert "Traceback" not in err
    assert loop.crm.log == [] and loop.ga4.log == []  # nothing was read or written
    assert runs(loop) == []


def test_two_processes_never_run_at_once(loop: Loop) -> None:
    config = edit_config(loop)
    settings = {**yaml.safe_load(Path(config).read_text())["crm"]["settings"]}
    edit_config(loop, crm={"kind": "hubspot", "settings": {**settings, "timeout_seconds": 600}})
    holding, second_done = threading.Event(), threading.Event()

    def hold_the_first_run(req: Any) -> None:
        # The first run's first CRM request comes after it took the lock: hold it there until
        # the second process has tried and exited, however long that takes.
        if not holding.is_set():
            holding.set()
            second_done.wait(300)

    loop.crm.on_request = hold_the_first_run
    first = spawn("sync", "-c", config)
    try:
        assert holding.wait(120), "the first run never reached the CRM"
        second = spawn("sync", "-c", config)
        _, second_err = second.communicate(timeout=120)
    finally:
        second_done.set()
    _, first_err = first.communicate(timeout=120)
    assert second.returncode == 5, second_err  # "lock held", not "failed"
    assert "already running" in second_err and "run 1" in second_err
    assert first.returncode == 0, first_err
    assert [r.status for r in runs(loop)] == ["succeeded"]


def test_sigterm_mid_run_finishes_the_batch_and_records_interrupted(loop: Loop) -> None:
    config = edit_config(loop)
    proc = spawn("sync", "-c", config)

    def stop_on_first_write(req: Any) -> None:
        if req.path.endswith("/batch/update") and proc.poll() is None:
            loop.crm.on_request = None
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # the signal lands while this batch is still in flight

    loop.crm.on_request = stop_on_first_write
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    (run,) = runs(loop)
    assert run.status == "interrupted"
    written = audit(loop)
    assert written  # the batch in flight was finished and recorded
    assert len(loop.writes()) == 1

    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        pending = session.exec(
            select(models.FieldWrite).where(models.FieldWrite.status == "pending")
        )
        assert pending.all() == []  # nothing half-recorded
    engine.dispose()
    _, resumed = loop.sync()
    assert resumed.status == "succeeded"
    assert audit(loop) >= written


def test_killed_at_any_point_reruns_to_the_same_state_and_audit(
    tmp_path: Path, company: Company
) -> None:
    reference = start_loop(tmp_path / "reference", "hubspot", company)
    try:
        edit_config(reference)
        reference.sync()
        expected_state, expected_audit = reference.crm_state(), audit(reference)
        total = len(reference.crm.log) + len(reference.ga4.log)
    finally:
        reference.systems.stop()
    kill_points = sorted(set(range(1, total, max(1, total // 10))))
    assert len(kill_points) >= 8
    for n, point in enumerate(kill_points):
        loop = start_loop(tmp_path / f"kill{n}", "hubspot", company)
        try:
            config = edit_config(loop)
            proc = spawn("sync", "-c", config)
            seen = {"n": 0}

            def kill_at(req: Any, point: int = point, proc: Any = proc, seen: Any = seen) -> None:
                seen["n"] += 1
                if seen["n"] == point:
                    os.kill(proc.pid, signal.SIGKILL)
                    time.sleep(0.2)

            loop.crm.on_request = loop.ga4.on_request = kill_at
            proc.communicate(timeout=120)
            assert proc.returncode == -signal.SIGKILL, f"not killed at request {point}"
            loop.crm.on_request = loop.ga4.on_request = None
            # the request the process died in still lands (a batch applied after its client
            # died): let it, so the rerun meets one CRM state, not a race with it
            assert loop.crm.wait_idle() and loop.ga4.wait_idle()
            _, rerun = loop.sync()
            assert rerun.status == "succeeded", (point, rerun.error)
            killed = runs(loop)[0]  # its lock was taken over (a dead PID of this machine)
            assert killed.status == "killed" and killed.finished_at is not None, point
            assert loop.crm_state() == expected_state, f"killed at request {point}"
            assert audit(loop) == expected_audit, f"killed at request {point}"
        finally:
            loop.systems.stop()
