"""Commands that run against the CRM: sync, serve, rollback, forget."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from connector.cli.common import (
    DEFAULT_CONFIG,
    EXIT_CODES,
    ConfigOption,
    LogFormat,
    _load,
    _setup_logging,
    _stop_on_signals,
    console,
    err,
    friendly_errors,
    rich_progress,
)


def run_and_summarise(
    loaded: Any, only: str | None = None, stop: threading.Event | None = None
) -> Any:
    from connector.run.context import build_context
    from connector.run.sync import run_sync

    with rich_progress() as progress:
        ctx = build_context(loaded, progress)
        if stop is not None:
            ctx.stop = stop
        run = run_sync(ctx, only=only)  # type: ignore[arg-type]
    console.print(
        f"run {run.id}: [bold]{run.status}[/] · {ctx.api_calls()} API requests · "
        + ", ".join(f"{k} {v}" for k, v in sorted(ctx.counts.items()))
    )
    if run.error:
        err.print(f"[yellow]{run.error}[/]")
    return ctx, run


def sync(
    config: ConfigOption = DEFAULT_CONFIG,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the CRM diff, write nothing.")
    ] = False,
    only: Annotated[
        str | None, typer.Option(help="extract | match | writeback | revenue | attribute")
    ] = None,
    verbose: bool = False,
    log_format: LogFormat = "text",
) -> None:
    """Run one sync: read sources and CRM, match, write back, pull revenue, attribute.

    Exit code: 0 succeeded, 1 failed, 2 configuration error, 3 interrupted, 4 stopped by an API
    budget (re-run later to resume), 5 another process holds the store lock (try again later).
    """
    from connector.run.sync import STEPS

    _setup_logging(verbose, log_format)
    if only is not None and only not in STEPS:
        raise typer.BadParameter(f"expected one of {', '.join(STEPS)}", param_hint="--only")
    with friendly_errors():
        loaded = _load(config)
        _setup_logging(verbose, log_format, loaded.secrets)
        if dry_run:
            from connector.run.context import build_context
            from connector.run.sync import run_sync

            with rich_progress() as progress:
                ctx = build_context(loaded, progress)
                ctx.dry_run = True
                run_sync(ctx, job="sync (dry run)")
                ctx.close()
            changes = ctx.write_plan.changes
            shown = "" if len(changes) <= 200 else " (the first 200 shown)"
            table = Table(title=f"Dry run: {len(changes)} changes would be written{shown}")
            for col in ("object", "record", "field", "now", "would be"):
                table.add_column(col)
            for c in changes[:200]:
                table.add_row(c.crm_object, c.record_id, c.field, c.old or "", c.new or "")
            console.print(table)
            return
        _, run = run_and_summarise(loaded, only=only, stop=_stop_on_signals())
    if run.status != "succeeded":
        raise typer.Exit(EXIT_CODES.get(run.status, 1))


def serve(
    config: ConfigOption = DEFAULT_CONFIG, verbose: bool = True, log_format: LogFormat = ""
) -> None:
    """Run the scheduled jobs of `service.jobs`, with /healthz and /metrics, until SIGTERM."""
    from connector.service.scheduler import catch_stop_signals
    from connector.service.scheduler import serve as run_service

    catch_stop_signals()  # first: a SIGTERM while the config loads still stops the service
    with friendly_errors():
        loaded = _load(config)
        _setup_logging(verbose, log_format or loaded.config.service.log_format, loaded.secrets)
        code = run_service(config)
    raise typer.Exit(code)


def rollback(
    run_id: Annotated[int, typer.Argument(help="The run whose writes to undo.")],
    config: ConfigOption = DEFAULT_CONFIG,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be restored.")
    ] = False,
) -> None:
    """Restore the values RUN overwrote, where the CRM still holds what closedloop wrote."""
    from connector.run.context import build_context
    from connector.run.rollback import rollback as do_rollback
    from connector.run.sync import run_job

    with friendly_errors():
        ctx = build_context(_load(config))
        ctx.dry_run = dry_run
        holder: dict[str, Any] = {}
        run = run_job(ctx, f"rollback {run_id}", lambda c: holder.update(r=do_rollback(c, run_id)))
    result = holder["r"]
    verb = "would restore" if dry_run else "restored"
    console.print(
        f"run {run.id}: {verb} {len(result.restored)} values of run {run_id}; "
        f"{len(result.left_alone)} left alone"
    )
    for line in result.left_alone[:50]:
        console.print(f"  [yellow]{line}[/]")


def forget(
    email: Annotated[str, typer.Option("--email", help="The person's address (any spelling).")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Erasure request: remove a person's identities, touchpoints and credits from the store."""
    from connector.run.forget import forget_email
    from connector.store.database import make_engine
    from connector.store.lock import job_lock

    with friendly_errors():
        loaded = _load(config)
        engine = make_engine(loaded.store_url())
        with job_lock(engine, "sync", timedelta(seconds=loaded.config.store.lock_stale_seconds)):
            gone = forget_email(engine, email)
        engine.dispose()
    console.print(
        f"removed {gone.contacts} contact record(s) with {gone.identities} identities, "
        f"{gone.touchpoints} touchpoints and {gone.credits} attribution credits; "
        "erase the person in the CRM too, or the next sync reads them again"
    )
