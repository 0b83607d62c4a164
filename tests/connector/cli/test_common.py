"""The CLI's error handling: one message, the exit code of its kind, never a secret."""

from __future__ import annotations

import pytest
import typer

from connector.cli.common import EXIT_CODES, friendly_errors
from connector.kernel import redact
from connector.kernel.errors import LockHeld


def test_an_unexpected_error_prints_its_traceback_without_the_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    redact.register(["pat-na1-unexpected-0001"])
    with pytest.raises(typer.Exit) as stopped, friendly_errors():
        raise ValueError("Invalid header value b'Bearer pat-na1-unexpected-0001\\n'")
    assert stopped.value.exit_code == 1
    printed = capsys.readouterr().err
    assert "ValueError: Invalid header value b'Bearer ***\\n'" in printed
    assert "pat-na1-unexpected-0001" not in printed


def test_a_held_lock_has_its_own_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as stopped, friendly_errors():
        raise LockHeld("job 'sync' is already running (host-b pid 7)")
    assert stopped.value.exit_code == EXIT_CODES["lock_held"] == 5
    assert "already running (host-b pid 7)" in capsys.readouterr().err
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)  # no two outcomes share a code
