"""Commands that run against the CRM: sync, serve, rollback, forget."""

from __future__ import annotations

import threading
from pathlib import Path
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
    require_run,
    rich_progress,
    run_summary,
)
from connector.cli.fleet import DEFAULT_FLEET, FleetOption, load_fleet_option
from connector.kernel.errors import ConfigError


def run_and_summarise(
    loaded: Any,
    only: str | None = None,
    stop: threading.Event | None = None,
    dry_run: bool = False,
) -> Any:
    """One run with progress bars, then its summary (and, for a dry run, what it would write).

    Returns (context, run); the caller closes the context."""
    from connector.run.context import build_context
    from connector.run.sync import run_sync

    with rich_progress() as progress:
        # a dry run makes no store: a new one's tables live only in its rolled-back transaction
        ctx = build_context(loaded, progress, create_store=not dry_run, must_exist=False)
        ctx.dry_run = dry_run
        if stop is not None:
            ctx.stop = stop
        try:
            run = run_sync(ctx, only=only)  # type: ignore[arg-type]
        except BaseException:
            ctx.close()
            raise
    console.print(run_summary(run, ctx.counts, dry_run))
    if ctx.rejected:
        console.print(f"[yellow]rejected input rows[/] (the first {len(ctx.rejected)}):")
        for _, message in ctx.rejected[:20]:
            console.print(f"  {message}", highlight=False)
        if not dry_run:
            console.print(f"  … all of them: closedloop runs show {run.id}")
    if dry_run and ctx.write_plan is not None:
        _print_plan(ctx.write_plan)
    if dry_run and ctx.conversion_run is not None:
        print_conversion_plan(ctx.conversion_run)
    if dry_run:
        _print_touch_plan(ctx)
    if run.error:
        err.print(f"[yellow]{run.error}[/]", highlight=False)
    return ctx, run


def _print_plan(plan: Any) -> None:
    changes = plan.changes
    shown = "" if len(changes) <= 200 else " (the first 200 shown)"
    table = Table(title=f"Dry run: {len(changes)} changes would be written{shown}")
    for col in ("object", "record", "field", "now", "would be"):
        table.add_column(col)
    for c in changes[:200]:
        table.add_row(c.crm_object, c.record_id, c.field, c.old or "", c.new or "")
    console.print(table)
    for problem in plan.problems[:20]:
        console.print(f"[yellow]would not write[/] {problem}", highlight=False)


def sync(
    config: ConfigOption = DEFAULT_CONFIG,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Do everything but save: print what would be read, written to the CRM and "
            "sent to the ad platforms; the CRM, the ad platforms and the store are left as "
            "they were.",
        ),
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(help="extract | match | revenue | attribute | conversions | writeback"),
    ] = None,
    verbose: bool = False,
    log_format: LogFormat = "text",
) -> None:
    """Run one sync: read sources and CRM, match, pull revenue, attribute, send conversions to
    the ad platforms, write back.

    Exit code: 0 succeeded, 1 failed, 2 configuration error (nothing was written), 3
    interrupted, 4 stopped by an API budget (re-run later to resume), 5 another process holds
    the store lock (try again later), 6 partial (finished, but some records failed or input
    rows were rejected: closedloop runs show ID).
    """
    from connector.run.sync import STEPS

    _setup_logging(verbose, log_format)
    if only is not None and only not in STEPS:
        raise typer.BadParameter(f"expected one of {', '.join(STEPS)}", param_hint="--only")
    with friendly_errors():
        loaded = _load(config)
        _setup_logging(verbose, log_format, loaded.secrets)
        ctx, run = run_and_summarise(loaded, only=only, stop=_stop_on_signals(), dry_run=dry_run)
        ctx.close()
    if run.status != "succeeded":
        raise typer.Exit(EXIT_CODES.get(run.status, 1))


def print_conversion_plan(result: Any) -> None:
    """What the conversions step would send (nothing was sent, nothing recorded)."""
    from connector.run.conversion_plan import SKIP_REASONS

    plan, adjustments = result.plan, result.adjustments.send
    shown = "" if len(plan.send) <= 200 else " (the first 200 shown)"
    table = Table(title=f"Dry run: {len(plan.send)} conversions would be sent{shown}")
    for col in ("conversion", "platform", "to", "deal / person", "when", "matched by", "value"):
        table.add_column(col)
    for p in plan.send[:200]:
        value = "" if p.value is None else f"{p.value:,.2f} {p.currency}"
        table.add_row(p.mapping.name, p.source, p.mapping.destination, p.subject_id,
                      f"{p.occurred_at:%Y-%m-%d %H:%M}", p.matched_by, value)  # fmt: skip
    console.print(table)
    for p in plan.rejected:
        console.print(f"[yellow]not sent[/] {p.mapping.name} {p.subject_id}: {p.problem}")
    for reason, n in sorted(plan.skipped.items()):
        console.print(f"[yellow]not sent ({SKIP_REASONS[reason]}): {n}[/]")
    for a in adjustments[:200]:
        change = "retract" if a.kind == "retraction" else f"restate to {a.new_value:,.2f}"
        console.print(f"would {change}: {a.source} {a.dedup_id} (was {a.old_value})")


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
    config: ConfigOption = DEFAULT_CONFIG,
    verbose: bool = True,
    log_format: LogFormat = "",
    workers: Annotated[
        str,
        typer.Option(
            help="celery: be the fleet's one scheduler, queueing every account's jobs for "
            "`closedloop worker`s (with --fleet)"
        ),
    ] = "",
    fleet: FleetOption = DEFAULT_FLEET,
) -> None:
    """Run the scheduled jobs of `service.jobs`, with /healthz and /metrics, until SIGTERM."""
    from connector.service.scheduler import catch_stop_signals
    from connector.service.scheduler import serve as run_service

    catch_stop_signals()  # first: a SIGTERM while the config loads still stops the service
    if workers:
        _serve_fleet(workers, fleet, verbose, log_format)
    with friendly_errors():
        loaded = _load(config)
        _setup_logging(verbose, log_format or loaded.config.service.log_format, loaded.secrets)
        code = run_service(config)
    raise typer.Exit(code)


def _serve_fleet(workers: str, fleet: Path, verbose: bool, log_format: str) -> None:
    with friendly_errors():
        if workers != "celery":
            raise ConfigError(f"--workers {workers!r}: the one kind is celery")
        loaded = load_fleet_option(fleet, workers=True)
        from connector.fleet.scheduler import serve_fleet

        _setup_logging(verbose, log_format or "json")
        code = serve_fleet(loaded)
    raise typer.Exit(code)


def rollback(
    run_id: Annotated[int, typer.Argument(help="The run whose writes to undo.")],
    config: ConfigOption = DEFAULT_CONFIG,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be restored; change nothing.")
    ] = False,
) -> None:
    """Restore the values RUN overwrote, where the CRM still holds what closedloop wrote;
    delete the touchpoint records it created, restore those it changed or deleted."""
    from connector.run.context import build_context
    from connector.run.rollback import rollback as do_rollback
    from connector.run.sync import run_job

    with friendly_errors():
        ctx = build_context(_load(config), create_store=False)
        try:
            require_run(ctx.engine, run_id)
            ctx.dry_run = dry_run
            holder: dict[str, Any] = {}
            run = run_job(
                ctx, f"rollback {run_id}", lambda c: holder.update(r=do_rollback(c, run_id))
            )
        finally:
            ctx.close()
    result = holder["r"]
    verb = "would restore" if dry_run else "restored"
    what = "dry run (nothing was changed)" if dry_run else f"run {run.id}"
    console.print(
        f"{what}: {verb} {len(result.restored)} values of run {run_id}; "
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
    if run.status != "succeeded":
        raise typer.Exit(EXIT_CODES.get(run.status, 1))


def forget(
    email: Annotated[str, typer.Option("--email", help="The person's address (any spelling).")],
    config: ConfigOption = DEFAULT_CONFIG,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; change nothing.")
    ] = False,
) -> None:
    """Erasure request: remove a person's identities, touchpoints, credits and conversions from
    the store (nothing about them is sent to an ad platform again), and delete the touchpoint
    records closedloop wrote under them in the CRM."""
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
        f"{gone.touchpoints} touchpoints, {gone.credits} attribution credits and "
        f"{gone.conversions} ad platform conversions from the store"
        + ("" if dry_run else "; nothing about them will be sent to an ad platform again")
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
