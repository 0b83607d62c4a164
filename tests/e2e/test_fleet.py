"""Many accounts on Celery workers, against the machine's RabbitMQ, Redis and PostgreSQL.

Twenty small demo companies, three ``closedloop worker`` processes: every account's CRM ends as
one ``closedloop sync`` in one process leaves it, also the account whose worker is SIGKILLed in
the middle of its write-back (the task goes to another worker), while an account whose CRM
answers only 500s fails alone. Several workers on one portal stay under its rate limit together;
the scheduler queues each account's jobs; a request for a busy account waits or is dropped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from connector.fleet.accounts import load_fleet
from connector.fleet.tasks import enqueue
from connector.store.lock import job_lock
from tests.e2e.fleet_support import (
    crm_state,
    finished,
    fleet,
    one_process_state,
    runs_of,
    wait_until,
)

COMPANIES = [
    {"seed": seed, "contacts": 20, "visits": 120, "deals": 4, "months": 1} for seed in (1, 2, 3)
]
ACCOUNTS = 20
FAILING, KILLED = 7, 5  # the account whose CRM answers 500, the one whose worker is killed


def lock_holder_pid(setup: Any, account: str) -> int | None:
    engine = create_engine(load_fleet(setup.fleet_file).account_url(account))
    try:
        with engine.connect() as conn:
            owner = conn.execute(text("SELECT owner FROM job_lock")).scalar()
    finally:
        engine.dispose()
    return int(owner.rsplit(" ", 1)[1]) if owner else None


def test_twenty_accounts_on_three_workers(tmp_path: Path) -> None:
    specs = {f"a{i:02d}": COMPANIES[i % len(COMPANIES)] for i in range(ACCOUNTS)}
    with fleet(tmp_path / "fleet", specs) as setup:
        names = sorted(setup.demos)
        failing, killed = names[FAILING], names[KILLED]
        setup.demos[failing].emulators["hubspot"].inject("500", 10**6)
        killed_pids: list[int] = []

        def kill_at_first_write(request: Any) -> None:
            """The worker holding the account's lock dies; this request is answered after."""
            if request.method == "POST" and "/batch/update" in request.path and not killed_pids:
                pid = lock_holder_pid(setup, killed)
                assert pid is not None
                killed_pids.append(pid)
                os.kill(pid, signal.SIGKILL)
                next(w for w in setup.workers if w.pid == pid).wait(30)  # gone, not a zombie

        setup.demos[killed].emulators["hubspot"].on_request = kill_at_first_write
        migrated = setup.closedloop("migrate", "--all")
        assert migrated.returncode == 0, migrated.stderr
        for i in range(3):
            setup.start_worker(tmp_path / f"worker{i}.log")
        references = [one_process_state(tmp_path / f"one{i}", c) for i, c in enumerate(COMPANIES)]
        queued = setup.closedloop("enqueue", names[0])  # the command; the rest from here
        assert queued.returncode == 0 and "queued" in queued.stdout, queued.stderr
        for name in names[1:]:
            enqueue(load_fleet(setup.fleet_file), name)
        for name in names:
            wait_until(lambda name=name: finished(setup, name), f"{name}'s run")

        assert killed_pids and killed_pids[0] in {w.pid for w in setup.workers}
        statuses = {name: [r.status for r in runs_of(setup, name)] for name in names}
        assert statuses[failing] == ["failed"]
        assert statuses[killed][0] == "killed" and statuses[killed][-1] in {"succeeded", "partial"}
        for i, name in enumerate(names):
            if name != failing:
                assert statuses[name][-1] in {"succeeded", "partial"}, (name, statuses[name])
                assert crm_state(setup.demos[name]) == references[i % len(COMPANIES)], name
        shown = setup.closedloop("runs", "--account", killed)
        assert shown.returncode == 0 and "killed" in shown.stdout, shown.stderr


def test_workers_on_one_portal_stay_under_its_limit_together(tmp_path: Path) -> None:
    """Three accounts writing to one HubSpot portal (one limit group), on three workers."""
    specs = {f"p{i}": COMPANIES[0] for i in range(3)}
    with fleet(tmp_path / "fleet", specs) as setup:
        names = sorted(setup.demos)
        portal = setup.demos[names[0]].emulators["hubspot"]
        share, limit = 0.15, 20  # the limiter allows 16 a 10 s; the portal refuses over 20
        for name in names:
            path = setup.demos[name].config_path
            config = yaml.safe_load(path.read_text())
            config["crm"]["settings"] |= {"host": portal.url, "rate_limit_share": share}
            path.write_text(yaml.safe_dump(config))
        fleet_config = yaml.safe_load(setup.fleet_file.read_text())
        fleet_config["limit_groups"] = {name: "portal" for name in names}
        setup.fleet_file.write_text(yaml.safe_dump(fleet_config))
        assert setup.closedloop("migrate", "--all").returncode == 0
        for i in range(3):
            setup.start_worker(tmp_path / f"worker{i}.log")
        first = setup.closedloop("enqueue", names[0])  # makes the portal's properties
        assert first.returncode == 0, first.stderr
        wait_until(lambda: finished(setup, names[0]), "the first run")
        portal.clear_log()
        portal.rate_limit = (limit, 10.0)
        for name in names:
            enqueue(load_fleet(setup.fleet_file), name)
        for name in names:
            wait_until(lambda name=name: len(runs_of(setup, name)) == (2 if name == names[0] else 1)
                       and finished(setup, name), f"{name}'s run")  # fmt: skip

        runs = [runs_of(setup, name)[-1] for name in names]
        assert all(r.status in {"succeeded", "partial"} for r in runs)
        spans = sorted((r.started_at, r.finished_at) for r in runs)
        assert any(b[0] < a[1] for a, b in pairwise(spans)), "the runs did not overlap"
        calls = [r for r in portal.log if "/search" not in r.path]
        searches = [r for r in portal.log if "/search" in r.path]
        assert len(calls) > limit  # more than one window's worth: the limiter had to pace them
        assert most_in_window([r.at for r in calls], 10.0) <= limit
        assert most_in_window([r.at for r in searches], 1.0) <= 5  # HubSpot's search limit


def most_in_window(times: list[float], window: float) -> int:
    times, start, most = sorted(times), 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_the_scheduler_queues_each_accounts_jobs_and_shows_them_by_account(
    tmp_path: Path,
) -> None:
    specs = {f"s{i}": COMPANIES[i] for i in range(2)}
    with fleet(tmp_path / "fleet", specs) as setup:
        names = sorted(setup.demos)
        for name in names:
            path = setup.demos[name].config_path
            config = yaml.safe_load(path.read_text())
            job = {"name": "hourly", "interval_minutes": 60, "run_on_start": True}
            config["service"] = {"jobs": [job | {"steps": ["extract", "match"]}]}
            path.write_text(yaml.safe_dump(config))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        fleet_config = yaml.safe_load(setup.fleet_file.read_text()) | {"port": port}
        setup.fleet_file.write_text(yaml.safe_dump(fleet_config))
        refused = setup.closedloop("serve", "--workers", "celery")
        assert refused.returncode == 2 and "closedloop migrate" in refused.stderr
        assert setup.closedloop("migrate", "--all").returncode == 0
        setup.start_worker(tmp_path / "worker.log")
        command = [str(Path(sys.executable).with_name("closedloop")), "serve", "--workers"]
        with (tmp_path / "serve.log").open("wb") as out:
            serve = subprocess.Popen([*command, "celery"], env=setup.env(), stdout=out, stderr=out)
        setup.workers.append(serve)  # stopped with the workers
        for name in names:
            wait_until(lambda name=name: finished(setup, name), f"{name}'s scheduled run")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz")
        assert health.status == 200
        jobs = {job["id"] for job in json.loads(health.read())["jobs"]}
        assert jobs == {f"{name}.hourly" for name in names}
        for name in names:
            assert f'closedloop_jobs_enqueued_total{{account="{name}",job="hourly"}} 1.0' in metrics
            done = [r.status for r in runs_of(setup, name)]
            assert len(done) == 1 and done[0] in {"succeeded", "partial"}
            shown = f'closedloop_account_runs_total{{account="{name}",status="{done[0]}"}} 1.0'
            assert shown in metrics
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0


@pytest.mark.parametrize("when_busy", ["wait", "drop"])
def test_a_request_for_a_busy_account_waits_or_is_dropped(tmp_path: Path, when_busy: str) -> None:
    with fleet(tmp_path / "fleet", {"busy": COMPANIES[0]}) as setup:
        (name,) = setup.demos
        fleet_config = yaml.safe_load(setup.fleet_file.read_text()) | {"when_busy": when_busy}
        setup.fleet_file.write_text(yaml.safe_dump(fleet_config))
        assert setup.closedloop("migrate", "--all").returncode == 0
        log = tmp_path / "worker.log"
        setup.start_worker(log)
        engine = create_engine(load_fleet(setup.fleet_file).account_url(name))
        try:
            with job_lock(engine, "sync"):  # another run of the account is in progress
                enqueue(load_fleet(setup.fleet_file), name)
                said = "waits" if when_busy == "wait" else "dropped"
                wait_until(lambda: f"job sync {said}" in log.read_text(), f"the worker {said}")
            if when_busy == "wait":
                wait_until(lambda: finished(setup, name), "the run once the lock is free")
                assert [r.status for r in runs_of(setup, name)] in (["succeeded"], ["partial"])
            else:
                assert runs_of(setup, name) == []
        finally:
            engine.dispose()
