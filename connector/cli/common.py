"""What every command shares: the Typer app, consoles, options, error handling, progress bars."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connector.kernel.errors import ClosedloopError, ConfigError, LockHeld
from connector.kernel.redact import redact

if TYPE_CHECKING:  # rich.progress loads only for commands that draw bars (fast --help)
    from rich.progress import Progress

app = typer.Typer(
    add_completion=False,
    # Click's plain help: Rich's help pulls in a Markdown parser and doubles `--help`'s time
    rich_markup_mode=None,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold tokens (older Typers showed them)
    help="Close the loop between marketing touchpoints and CRM revenue.",
)
# Piped output (CI logs, files) gets room for the report instead of 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="CLOSEDLOOP_CONFIG", help="The admin's config file."),
]
DEFAULT_CONFIG = Path("config/closedloop.yaml")


class RichProgress:
    """connector.run.progress.Progress drawn as Rich bars."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def task(self, name: str, total: int | None = None) -> Any:
        task_id = self.progress.add_task(name, total=total)
        bar = self.progress

        class _Task:
            def advance(self, n: int = 1) -> None:
                bar.advance(task_id, n)

            def finish(self) -> None:
                done = next(t.completed for t in bar.tasks if t.id == task_id)
                if done:
                    bar.update(task_id, total=done, completed=done)
                else:
                    bar.remove_task(task_id)

        return _Task()


@contextmanager
def rich_progress() -> Iterator[RichProgress]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<42}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        yield RichProgress(progress)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """An error becomes a message and an exit code; no text printed here carries a secret."""
    try:
        yield
    except ConfigError as exc:
        err.print("[bold red]configuration error[/]", highlight=False)
        err.print(redact(str(exc)), highlight=False, markup=False)
        raise typer.Exit(2) from None
    except LockHeld as exc:
        err.print(f"[bold red]error[/] {escape(redact(str(exc)))}", highlight=False)
        raise typer.Exit(EXIT_CODES["lock_held"]) from None
    except ClosedloopError as exc:
        err.print(f"[bold red]error[/] {escape(redact(str(exc)))}", highlight=False)
        raise typer.Exit(1) from None
    except Exception as exc:
        if isinstance(exc, typer.Abort) or hasattr(exc, "exit_code"):
            raise  # Typer's (and Click's) own exits and usage errors
        # unexpected: the traceback helps a bug report, but may quote a header or a URL
        err.print(redact(traceback.format_exc()), highlight=False, markup=False)
        raise typer.Exit(1) from None


LogFormat = Annotated[str, typer.Option("--log-format", help="text | json (JSON lines)")]
# The one table of exit codes of the commands that run (sync, rollback), by how the run ended,
# and "lock_held" (another process runs a job); 2 is a configuration or usage error (nothing
# was written). The README's "Exit codes" repeats this.
EXIT_CODES = {
    "succeeded": 0, "failed": 1, "interrupted": 3, "incomplete": 4, "lock_held": 5, "partial": 6,
}  # fmt: skip


def run_summary(run: Any, counts: dict[str, Any], dry_run: bool = False) -> Table:
    """A run's counts as a few readable lines: what was read, matched, attributed, written."""
    seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    what = "Dry run (nothing was saved or sent)" if dry_run else f"Run {run.id}"
    title = f"{what}: {run.status}{took} · {run.api_calls:,} API requests"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    sources = sorted({k.split(".")[0] for k in counts if "." in k})
    for name in sources:
        parts = [f"{counts.get(f'{name}.touchpoints', 0):,} touchpoints",
                 f"{counts.get(f'{name}.spend', 0):,} spend rows"]  # fmt: skip
        if counts.get(f"{name}.rows_rejected"):
            parts.append(f"[yellow]{counts[f'{name}.rows_rejected']:,} rows rejected[/]")
        table.add_row(f"read {name}", ", ".join(parts))
    if "contacts_read" in counts or "deals_read" in counts:
        table.add_row("read CRM", f"{counts.get('contacts_read', 0):,} people and "
                      f"{counts.get('deals_read', 0):,} deals (new or changed)")  # fmt: skip
    if "journeys" in counts:
        table.add_row("matched", f"{counts['journeys']:,} people with touchpoints")
    if "deals_attributed" in counts:
        odd = [f"{counts[k]:,} {label}" for k, label in (
            ("deals_without_touches", "without touches"),
            ("deals_unknown_currency", "in a currency without a rate"),
        ) if counts.get(k)]  # fmt: skip
        table.add_row("attributed", f"{counts['deals_attributed']:,} deals"
                      + (f" ({', '.join(odd)})" if odd else ""))  # fmt: skip
    if "writeback_records_considered" in counts:
        changes = counts.get("writeback_changes", 0)
        compared = counts["writeback_records_considered"]
        line = (f"would change {changes:,} fields on {compared:,} records compared" if dry_run
                else f"{counts.get('records_written', 0):,} records updated ({changes:,} field "
                f"changes) of {compared:,} compared")  # fmt: skip
        if counts.get("records_failed"):
            line += f", [red]{counts['records_failed']:,} failed[/]"
        if counts.get("writeback_problems"):
            line += f", [yellow]{counts['writeback_problems']:,} not writable[/]"
        table.add_row("CRM write-back", line)
    if any(k.startswith("touch_records_") for k in counts):
        table.add_row("touchpoint records", _touch_line(counts, dry_run))
    if any(k.startswith("conversions_") for k in counts):
        sent = ", ".join(
            f"{counts[k]:,} {k.removeprefix('conversions_')}"
            for k in sorted(counts)
            if k.startswith("conversions_") and counts[k]
        )
        table.add_row("conversions", sent or "nothing to send")
    return table


def _touch_line(counts: dict[str, Any], dry_run: bool) -> str:
    """Touchpoint records of a run: skipped (and why it says so in the log), or what changed."""
    if counts.get("touch_records_skipped"):
        return "[yellow]skipped: the CRM cannot hold them (see the warning above)[/]"
    planned = ", ".join(
        f"{counts.get(f'touch_records_to_{a}', 0):,} to {a}" for a in ("create", "update", "delete")
    )
    line = f"{planned}; {counts.get('touch_records_unchanged', 0):,} unchanged"
    if not dry_run:
        line += f"; {counts.get('touch_records_written', 0):,} written"
    if counts.get("touch_records_failed"):
        line += f", [red]{counts['touch_records_failed']:,} failed[/]"
    return line


def require_run(engine: Any, run_id: int) -> Any:
    """The run ``run_id`` of the store, or a usage error (exit 2) that records nothing."""
    from sqlmodel import Session

    from connector.store import models

    with Session(engine) as session:
        run = session.get(models.SyncRun, run_id)
        if run is None:
            raise typer.BadParameter(
                f"there is no run {run_id}; `closedloop runs` lists them", param_hint="RUN_ID"
            )
        session.expunge(run)
    return run


def _setup_logging(verbose: bool, fmt: str = "text", secrets: Any = ()) -> None:
    from connector.service.logs import setup_logging

    setup_logging(fmt, logging.INFO if verbose else logging.WARNING, secrets)


def _stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT ask the run to stop after the batch in flight (it is then 'interrupted')."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _load(config: Path) -> Any:
    from connector.config.loader import load_config

    demo = Path("closedloop-demo/closedloop.yaml")
    if config == DEFAULT_CONFIG and not config.exists() and demo.exists():
        raise ConfigError(
            f"{config}: no config here; the demo's is {demo}: add -c {demo} "
            "(or set CLOSEDLOOP_CONFIG)"
        )
    return load_config(config)
