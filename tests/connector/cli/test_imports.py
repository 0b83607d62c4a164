"""`closedloop paths --help` stays light: the heavy libraries load only for the commands that
use them (a fresh interpreter, so other tests' imports do not count)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "numpy", "scipy", "sqlmodel", "sqlalchemy", "markdown_it",
    "hubspot", "simple_salesforce", "google.analytics", "facebook_business", "requests",
)  # fmt: skip

SCRIPT = """
import json, sys
from connector.cli import app
try:
    app(["paths", "--help"], prog_name="closedloop")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_paths_help_imports_no_heavy_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    )
    help_text, _, last = done.stdout.rstrip().rpartition("\n")
    result = json.loads(last)
    assert result["code"] == 0
    assert "Usage: closedloop paths" in help_text and "--models" in help_text
    loaded = [
        name for name in HEAVY
        if any(m == name or m.startswith(f"{name}.") for m in result["modules"])
    ]  # fmt: skip
    assert loaded == []
