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


def start_http(
    loaded: LoadedConfig, scheduler: BackgroundScheduler, engine: Engine, stop: threading.Event
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/metrics":
                status, payload, kind = 200, generate_latest(), CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                status, body = health(engine, scheduler, stop)
                payload, kind = json.dumps(body).encode(), "application/json"
            else:
                status, payload, kind = 404, b"not found\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            # through logging (JSON lines, secrets redacted), not socketserver's print to stderr
            log.warning("health/metrics request from %s failed", client_address[0], exc_info=True)

    svc = loaded.config.service
    server = Server((svc.host, svc.port), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    ).start()
    return server
