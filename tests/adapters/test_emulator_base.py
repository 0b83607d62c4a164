"""The emulators' common server (adapters/_emulator.py)."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import pytest

from adapters._emulator import EmulatorServer, Request, Response, route


class Echo(EmulatorServer):
    @route("GET", r"/echo")
    def echo(self, req: Request) -> Response:
        return Response(200, {"path": req.path})


def test_a_client_that_hangs_up_leaves_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C in the demo drops connections mid-request: the server says nothing about it."""
    emu = Echo().start()
    entered, hung_up = threading.Event(), threading.Event()
    handler: dict[str, Any] = {}

    def wait_for_hang_up(req: Request) -> None:
        handler["thread"] = threading.current_thread()
        entered.set()
        hung_up.wait(10)

    emu.on_request = wait_for_hang_up
    try:
        port = int(emu.url.rsplit(":", 1)[1])
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert entered.wait(10)
        # close with a reset, so the answer meets a broken connection
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        hung_up.set()
        handler["thread"].join(10)
        assert not handler["thread"].is_alive()
    finally:
        emu.stop()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err
