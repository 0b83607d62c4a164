"""The service's HTTP face: ``/healthz`` (scheduler and last run) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from connector.config.loader import LoadedConfig
from connector.kernel.errors import ConfigError
from connector.store import models

log = logging.getLogger(__name__)


def health(
    engine: Engine, scheduler: BackgroundScheduler, stop: threading.Event
) -> tuple[int, dict[str, Any]]:
    with Session(engine) as session:
        last = session.exec(
            select(models.SyncRun).order_by(col(models.SyncRun.id).desc()).limit(1)
        ).first()
    body = {
        "status": "ok" if scheduler.running and not stop.is_set() else "stopping",
        "jobs": [
            {"id": j.id, "next_run": j.next_run_time.isoformat() if j.next_run_time else None}
            for j in scheduler.get_jobs()
        ],
        "last_run": None if last is None else {
            "id": last.id, "job": last.job, "status": last.status,
            "started_at": last.started_at.isoformat(),
        },
    }  # fmt: skip
    return (200 if body["status"] == "ok" else 503), body


class HealthServer(ThreadingHTTPServer):
    """Bound at start-up, before any job runs; serves once the scheduler is there."""

    daemon_threads = True
    scheduler: BackgroundScheduler
    engine: Engine
    stop: threading.Event

    def handle_error(self, request: Any, client_address: Any) -> None:
        # through logging (JSON lines, secrets redacted), not socketserver's print to stderr
        log.warning("health/metrics request from %s failed", client_address[0], exc_info=True)


class Handler(BaseHTTPRequestHandler):
    """``/metrics`` and ``/healthz``; a subclass may say what health is (the fleet's scheduler)."""

    server: HealthServer

    def log_message(self, *args: Any) -> None:
        pass

    def health(self) -> tuple[int, dict[str, Any]]:
        return health(self.server.engine, self.server.scheduler, self.server.stop)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/metrics":
            status, payload, kind = 200, generate_latest(), CONTENT_TYPE_LATEST
        elif self.path == "/healthz":
            status, body = self.health()
            payload, kind = json.dumps(body).encode(), "application/json"
        else:
            status, payload, kind = 404, b"not found\n", "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def bind_http(loaded: LoadedConfig) -> HealthServer:
    """Listen on ``service.host:port``; a port in use is a configuration error."""
    svc = loaded.config.service
    try:
        return HealthServer((svc.host, svc.port), Handler)
    except OSError as exc:
        raise ConfigError(
            f"{loaded.path}: service.port: cannot listen on {svc.host}:{svc.port} for /healthz "
            f"and /metrics ({exc.strerror or exc}); stop the process using it (another "
            "`closedloop serve`?) or choose another service.host/service.port"
        ) from None


def start_http(
    server: HealthServer, scheduler: BackgroundScheduler, engine: Engine, stop: threading.Event
) -> None:
    server.scheduler, server.engine, server.stop = scheduler, engine, stop
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    ).start()
