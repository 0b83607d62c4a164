"""The common machinery of every wire-faithful emulator: a local HTTP server in a thread.

An emulator subclasses :class:`EmulatorServer`, declares its routes with :func:`route`, and
answers with the vendor's paths, JSON shapes and errors. The base adds what tests and the demo
need from every emulator: a request log, a sliding-window rate limit, an auth check and fault
injection (429 bursts, 5xx, dropped connections).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    raw_query: str = ""  # undecoded, for APIs whose encoding matters (LinkedIn's Rest.li)
    at: float = field(default_factory=time.monotonic)  # when it arrived
    status: int = 0  # the status it was answered with (0 until answered)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Fault:
    kind: str  # "429" | "500" | "502" | "503" | "drop"
    remaining: int
    path_prefix: str = ""


Handler = Callable[[Any, Request], Response]


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Declare a handler for ``method`` and a path regex (named groups become ``req.params``)."""

    def mark(fn: Handler) -> Handler:
        fn._route = (method, re.compile(pattern + r"/?$"))  # type: ignore[attr-defined]
        return fn

    return mark


class EmulatorServer:
    """Base class: subclasses add routes, ``check_auth`` and ``rate_limited_response``."""

    name = "emulator"

    def __init__(self, rate_limit: tuple[int, float] | None = None) -> None:
        self.rate_limit = rate_limit  # (max requests, per seconds)
        self.log: list[Request] = []
        self.faults: list[Fault] = []
        self._lock = threading.RLock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._recent: deque[float] = deque()
        self._routes = [
            getattr(self, n)._route + (getattr(self, n),)
            for n in dir(type(self))
            if hasattr(getattr(type(self), n), "_route")
        ]
        self.latency = 0.0  # seconds added to every response (slow-API tests)
        self.on_request: Callable[[Request], None] | None = None  # test hook, before answering
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, port: int = 0) -> Self:
        emulator = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                emulator._dispatch(self)

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    # The client hung up (Ctrl-C, a killed process): nobody is left to answer,
                    # and a traceback from this thread would only bury the user's own message.
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server, "emulator not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test helpers ----------------------------------------------------------------------
    def inject(self, kind: str, count: int = 1, path_prefix: str = "") -> None:
        """Make the next ``count`` requests under ``path_prefix`` fail with ``kind``."""
        with self._lock:
            self.faults.append(Fault(kind, count, path_prefix))

    def requests(self, method: str | None = None, path_contains: str = "") -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and path_contains in r.path
            ]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no request is being handled (one whose client died included)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # -- hooks for subclasses --------------------------------------------------------------
    def check_auth(self, req: Request) -> Response | None:
        """Return an error response when the request is not authorised."""
        return None

    def rate_limited_response(self, req: Request) -> Response:
        return Response(429, {"error": "rate limited"}, {"Retry-After": "1"})

    def server_error_response(self, req: Request, status: int) -> Response:
        return Response(status, {"error": "internal error"})

    def not_found_response(self, req: Request) -> Response:
        return Response(404, {"error": f"no route for {req.method} {req.path}"})

    # -- dispatch --------------------------------------------------------------------------
    def _take_fault(self, req: Request) -> str | None:
        with self._lock:
            for fault in self.faults:
                if fault.remaining > 0 and req.path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    return fault.kind
            return None

    def _over_rate_limit(self) -> bool:
        if not self.rate_limit:
            return False
        limit, window = self.rate_limit
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] > window:
                self._recent.popleft()
            if len(self._recent) >= limit:
                return True
            self._recent.append(now)
            return False

    def _dispatch(self, http: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._in_flight += 1
        try:
            self._answer(http)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _answer(self, http: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        body = http.rfile.read(length) if length else b""
        req = Request(
            method=http.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in http.headers.items()},
            body=body,
            raw_query=parts.query,
        )
        with self._lock:
            self.log.append(req)
        if self.on_request is not None:
            self.on_request(req)
        if self.latency:
            time.sleep(self.latency)
        fault = self._take_fault(req)
        if fault == "drop":
            http.close_connection = True
            try:
                http.connection.shutdown(2)
            except OSError:
                pass
            return
        if fault == "429" or (fault is None and self._over_rate_limit()):
            response = self.rate_limited_response(req)
        elif fault:
            response = self.server_error_response(req, int(fault))
        else:
            response = self.check_auth(req) or self._route(req)
        req.status = response.status
        payload = response.encode()
        http.send_response(response.status)
        if payload:
            http.send_header("Content-Type", response.content_type)
        http.send_header("Content-Length", str(len(payload)))
        for key, value in response.headers.items():
            http.send_header(key, value)
        http.end_headers()
        http.wfile.write(payload)

    def _route(self, req: Request) -> Response:
        for method, pattern, handler in self._routes:
            match = pattern.match(req.path)
            if method == req.method and match:
                req.params = match.groupdict()
                try:
                    response: Response = handler(req)
                    return response
                except Exception as exc:  # an emulator bug must surface as a 500, not a hang
                    return Response(500, {"error": f"emulator error: {exc!r}"})
        return self.not_found_response(req)
