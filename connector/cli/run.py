"""Commands that run against the CRM: sync, serve, rollback, forget."""

from __future__ import annotations

import threading
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
    budget (re-run later to resume).
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
            _print_touch_plan(ctx)
            return
        _, run = run_and_summarise(loaded, only=only, stop=_stop_on_signals())
    if run.status != "succeeded":
        raise typer.Exit(EXIT_CODES.get(run.status, 1))


def _print_touch_plan(ctx: Any) -> None:
    """The touchpoint records a dry run would create, update and delete."""
    import json

    outcome = ctx.touch_plan
    if outcome is None:
        return
    if outcome.skipped:
        console.print(f"[yellow]Touchpoint records skipped:[/] {outcome.skipped}")
        return
    plan = outcome.plan
    counts = ", ".join(f"{plan.count(a)} to {a}" for a in ("create", "update", "delete"))
    shown = "" if len(plan.changes) <= 200 else " (the first 200 shown)"
    table = Table(
        title=f"Dry run: touchpoint records ({plan.object}): {counts}, "
        f"{plan.unchanged} unchanged{shown}"
    )
    for col in ("action", "key", "linked to", "values"):
        table.add_column(col)
    for c in outcome.preview:
        record = json.loads(c.new) if c.new else {"fields": {}, "links": {}}
        links = ", ".join(f"{o} {i}" for o, i in sorted(record["links"].items()) if i)
        values = " · ".join(str(v) for _, v in sorted(record["fields"].items()) if v)
        table.add_row(c.action, c.key, links, values)
    console.print(table)


def serve(
    config: ConfigOption = DEFAULT_CONFIG, verbose: bool = True, log_format: LogFormat = ""
) -> None:
    """Run the scheduled jobs of `service.jobs`, with /healthz and /metrics, until SIGTERM."""
    from connector.service.scheduler import serve as run_service

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
    """Restore the values RUN overwrote, where the CRM still holds what closedloop wrote;
    delete the touchpoint records it created, restore those it changed or deleted."""
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
    touch = result.touch_records
    if touch.changes or touch.left_alone:
        would = "would " if dry_run else ""
        console.print(
            f"touchpoint records ({touch.object}): {would}delete {touch.count('delete')} "
            f"the run created, {would}restore {touch.count('update')} it changed and "
            f"{touch.count('create')} it deleted; {len(touch.left_alone)} left alone"
        )
    for line in [*result.left_alone, *touch.left_alone][:50]:
        console.print(f"  [yellow]{line}[/]")


def forget(
    email: Annotated[str, typer.Option("--email", help="The person's address (any spelling).")],
    config: ConfigOption = DEFAULT_CONFIG,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; change nothing.")
    ] = False,
) -> None:
    """Erasure request: remove a person's identities, touchpoints and credits from the store,
    and delete the touchpoint records closedloop wrote under them in the CRM."""
    from connector.run.context import build_context
    from connector.run.forget import forget_email
    from connector.run.sync import run_job
    from connector.run.touch_undo import forget_records

    with friendly_errors():
        ctx = build_context(_load(config))
        ctx.dry_run = dry_run
        holder: dict[str, Any] = {}

        def work(c: Any) -> None:
            holder["crm"] = forget_records(c, email)  # first: it needs the person's ids
            holder["store"] = forget_email(c.engine, email, dry_run=dry_run)

        run = run_job(ctx, "forget" + (" (dry run)" if dry_run else ""), work)
        ctx.close()
    gone, crm = holder["store"], holder["crm"]
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb} {gone.contacts} contact record(s) with {gone.identities} identities, "
        f"{gone.touchpoints} touchpoints and {gone.credits} attribution credits from the store"
    )
    if crm.changes:
        deleted = len(crm.changes) if dry_run else crm.counts.get("touch_records_written", 0)
        failed = crm.counts.get("touch_records_failed", 0)
        console.print(
            f"{'would delete' if dry_run else 'deleted'} {deleted} touchpoint records "
            f"({crm.object}) in the CRM"
            + (
                f"; {failed} could not be deleted (see closedloop runs show {run.id})"
                if failed
                else ""
            )
        )
    else:
        console.print("no touchpoint records of this person in the CRM")
    console.print(
        "erase the person in the CRM too, or the next sync reads them again"
        + (" (dry run: nothing was changed)" if dry_run else "")
    )
