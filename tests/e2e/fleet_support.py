"""A fleet on the machine's RabbitMQ, Redis and PostgreSQL, with demo companies as accounts.

The services may be missing only outside CI (the tests then skip); in CI ``.ci/run`` starts
them. Each test gets its own RabbitMQ vhost queue, Redis key space and PostgreSQL schemas (named
after a random tag), so parallel runs on one machine do not meet.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from connector.config.loader import dump_yaml
from connector.demo.emulators import TOKENS, DemoSystems, start_demo
from connector.demo.synthetic import generate
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
        return {**os.environ, **TOKENS, "CLOSEDLOOP_FLEET": str(self.fleet_file)}

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


def write_fleet(root: Path, tag: str, accounts: dict[str, dict[str, Any]]) -> FleetSetup:
    """``accounts``: name -> arguments of :func:`generate` (a small demo company each)."""
    setup = FleetSetup(root, tag)
    for name, company in accounts.items():
        setup.demos[name] = start_demo(root / "accounts" / name, company=generate(**company))
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
        engine = create_engine(PG_URL)
        with engine.begin() as conn:
            for name in setup.demos:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "account_{name}" CASCADE'))
        engine.dispose()
