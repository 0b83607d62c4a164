"""The tree keeps its shape: import rules (import-linter contracts in pyproject.toml) and small
modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 420  # "a few screens"; a vendor's emulator may be longer


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_modules_stay_small() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for folder in ("connector", "adapters")
        for path in (ROOT / folder).rglob("*.py")
        if "emulator" not in path.name
        and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
