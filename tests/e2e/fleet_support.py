"""A fleet on the machine's RabbitMQ, Redis and PostgreSQL, with demo companies as accounts.

The services may be missing only outside CI (the tests then skip); in CI ``.ci/run`` starts
them. Each test gets its own queue (in the vhost ``closedloop_test``), Redis keys and
PostgreSQL schemas (named after a random tag), so parallel runs on one machine do not meet.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kombu import Connection
from sqlalchemy import create_engine, text

from connector.config.loader import dump_yaml, load_config
from connector.demo.emulators import DemoSystems, start_demo
from connector.demo.synthetic import generate
from connector.fleet.accounts import load_fleet
from connector.run.context import build_context
from connector.run.sync import run_sync
from tests.conftest import PG_URL

VHOST = "closedloop_test"
BROKER = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
REDIS = "redis://127.0.0.1:6379/5"


def require_services() -> None:
    """Skip (or, in CI, fail) unless RabbitMQ, Redis and PostgreSQL answer; make the vhost."""
    missing = [
        f"{name} at 127.0.0.1:{port}"
        for name, port in (("RabbitMQ", 5672), ("Redis", 6379), ("PostgreSQL", 5432))
        if not _listening(port)
    ]
    if missing:
        message = "not reachable: " + ", ".join(missing) + " (.ci/run starts them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    for args in (["add_vhost", VHOST], ["set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, check=False, timeout=60)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class FleetSetup:
    """A fleet folder: fleet.yaml, accounts/<name>/ (each a demo company and its emulators)."""

    root: Path
    tag: str
    demos: dict[str, DemoSystems] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def fleet_file(self) -> Path:
        return self.root / "fleet.yaml"

    def env(self) -> dict[str, str]:
        return {**os.environ, "CLOSEDLOOP_FLEET": str(self.fleet_file)}

    def closedloop(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).with_name("closedloop")), *args]
        return subprocess.run(
            command, env=self.env(), capture_output=True, text=True, timeout=300, check=False
        )

    def start_worker(self, log: Path) -> subprocess.Popen[bytes]:
        command = [str(Path(sys.executable).with_name("closedloop")), "worker"]
        with log.open("ab") as out:
            worker = subprocess.Popen(command, env=self.env(), stdout=out, stderr=out)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGQUIT)  # cold: no task is left half acknowledged
        for worker in self.workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        for demo in self.demos.values():
            demo.stop()


def start_small_demo(folder: Path, company: dict[str, Any]) -> DemoSystems:
    """A demo company (``company``: arguments of :func:`generate`) read back 40 days only."""
    demo = start_demo(folder, company=generate(**company))
    config = yaml.safe_load(demo.config_path.read_text())
    config["sync"]["initial_days"] = 40
    demo.config_path.write_text(yaml.safe_dump(config))
    return demo


def write_fleet(root: Path, tag: str, accounts: dict[str, dict[str, Any]]) -> FleetSetup:
    """``accounts``: name -> arguments of :func:`generate` (a small demo company each)."""
    setup = FleetSetup(root, tag)
    for name, company in accounts.items():
        setup.demos[name] = start_small_demo(root / "accounts" / name, company)
    setup.fleet_file.write_text(
        dump_yaml(
            {
                "broker_url": BROKER,
                "redis_url": REDIS,
                "store_url": PG_URL,
                "accounts": "accounts",
                "queue": f"closedloop_{tag}",
                "busy_retry_seconds": 0.5,
            }
        )
    )
    return setup


@contextmanager
def fleet(root: Path, accounts: dict[str, dict[str, Any]]) -> Iterator[FleetSetup]:
    """A written fleet whose schemas, queue and Redis keys are removed at the end."""
    require_services()
    tag = uuid.uuid4().hex[:8]
    setup = write_fleet(root, tag, {f"{name}_{tag}": spec for name, spec in accounts.items()})
    try:
        yield setup
    finally:
        setup.stop()
        with Connection(BROKER) as broker:
            broker.default_channel.queue_delete(f"closedloop_{tag}")
        engine = create_engine(PG_URL)
        with engine.begin() as conn:
            for name in setup.demos:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "account_{name}" CASCADE'))
        engine.dispose()


def crm_state(demo: DemoSystems) -> dict[str, Any]:
    """What closedloop wrote on the HubSpot emulator: each contact's and deal's cl_ fields."""
    emu = demo.emulators["hubspot"]
    return {
        kind: {
            rid: {k: v for k, v in record.properties.items() if k.startswith("cl_")}
            for rid, record in sorted(emu.objects[kind].items())
        }
        for kind in ("contacts", "deals")
    }


def one_process_state(root: Path, company: dict[str, Any]) -> dict[str, Any]:
    """The CRM end state of one uninterrupted ``closedloop sync`` of the company (SQLite)."""
    demo = start_small_demo(root, company)  # its secrets in the demo's secrets.yaml
    try:
        ctx = build_context(load_config(demo.config_path))
        try:
            assert run_sync(ctx).status in {"succeeded", "partial"}
        finally:
            ctx.close()
        return crm_state(demo)
    finally:
        demo.stop()


def runs_of(setup: FleetSetup, account: str) -> list[Any]:
    """The account's runs (id, status, started_at, finished_at), oldest first."""
    engine = create_engine(load_fleet(setup.fleet_file).account_url(account))
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    text("SELECT id, status, started_at, finished_at FROM sync_run ORDER BY id")
                )
            )
    finally:
        engine.dispose()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 240.0) -> None:
    """Poll ``check`` (an event seen in the store or an emulator), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def finished(setup: FleetSetup, account: str) -> bool:
    runs = runs_of(setup, account)
    return bool(runs) and runs[-1].status not in {"running", "killed"}
