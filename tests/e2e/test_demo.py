"""`closedloop demo` as a newcomer meets it: only its own files, what to do next, Ctrl-C, and
nothing the test extras bring."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from connector.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def test_demo_refuses_a_folder_it_did_not_make_and_keeps_what_others_put_in_its_own(
    tmp_path: Path,
) -> None:
    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "thesis.txt").write_text("years of work")
    refused = runner.invoke(app, ["demo", "--dir", str(theirs), "--contacts", "20"])
    assert refused.exit_code == 2, refused.output
    assert "not made by `closedloop demo`" in refused.output
    assert [p.name for p in theirs.iterdir()] == ["thesis.txt"]

    demo_dir = tmp_path / "demo"
    first = runner.invoke(app, ["demo", "--dir", str(demo_dir), "--contacts", "40"])
    assert first.exit_code == 0, first.output
    (demo_dir / "report.html").write_text("kept")
    again = runner.invoke(app, ["demo", "--dir", str(demo_dir), "--contacts", "40"])
    assert again.exit_code == 0, again.output
    assert (demo_dir / "report.html").read_text() == "kept"
    assert "Run 1: succeeded" in again.output  # its own store was reset, not appended to

    config = demo_dir / "closedloop.yaml"
    for command in (f"closedloop report -c {config} --by campaign",
                    f"closedloop report -c {config} --format html -o report.html",
                    f"closedloop runs -c {config} show 1"):  # fmt: skip
        assert command in again.output
    assert "emulators stopped" in again.output and "cannot run" in again.output
    assert "@" in again.output.split("Contacts as a sales rep")[1]  # people shown by email
    assert "contacts/" not in again.output


def test_demo_help_names_both_crms() -> None:
    result = runner.invoke(app, ["demo", "--help"])
    assert "hubspot" in result.output.lower() and "salesforce" in result.output.lower()


def test_ctrl_c_in_the_demo_is_a_clean_stop(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "demo", "--dir", str(tmp_path / "d"),
         "--contacts", "100"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:  # the emulators are up and the sync is about to start
        if line.startswith("seeded"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, out + err
    assert "demo interrupted (Ctrl-C)" in err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_the_demo_needs_nothing_from_the_test_extras(tmp_path: Path) -> None:
    """The README's first command installs `-e .` only: the demo must run without them."""
    blocked = ["ChannelAttribution", "pandas", "matplotlib", "pytest", "jsonschema", "psycopg",
               "time_machine", "mypy", "ruff", "importlinter"]  # fmt: skip
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError(f"{{name}} is a test extra")
        sys.meta_path.insert(0, Block())
        from connector.cli import app
        app(["demo", "--dir", {str(tmp_path / "d")!r}, "--contacts", "40"])
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Contacts as a sales rep now sees them" in result.stdout
