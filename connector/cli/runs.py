"""Run history: ``closedloop runs`` and ``closedloop runs show ID``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from connector.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    _load,
    console,
    friendly_errors,
    require_run,
)
from connector.cli.fleet import DEFAULT_FLEET, AccountOption, FleetOption, load_fleet_option
from connector.kernel.redact import redact

runs_app = typer.Typer(help="Run history.", invoke_without_command=True)


def _store_url(where: tuple[Path, Path, str | None]) -> str:
    """The config's store, or the fleet account's schema with ``--account``."""
    config, fleet, account = where
    if account is None:
        return str(_load(config).store_url())
    loaded = load_fleet_option(fleet)
    loaded.check_name(account)
    return str(loaded.account_url(account))


@runs_app.callback()
def runs(
    ctx: typer.Context,
    config: ConfigOption = DEFAULT_CONFIG,
    limit: int = 20,
    fleet: FleetOption = DEFAULT_FLEET,
    account: AccountOption = None,
) -> None:
    """List recent runs: status, duration, counts, errors (--account: a fleet's account)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (config, fleet, account)
        return
    from sqlmodel import Session, col, select

    from connector.report.terminal import cell
    from connector.store import models
    from connector.store.database import make_engine

    with friendly_errors():
        engine = make_engine(_store_url((config, fleet, account)), create=False)
    with Session(engine) as session:
        rows = session.exec(
            select(models.SyncRun).order_by(col(models.SyncRun.id).desc()).limit(limit)
        ).all()
    table = Table(title="Runs")
    for name in (
        "id",
        "job",
        "status",
        "started",
        "seconds",
        "API calls",
        "written",
        "failed",
        "error",
    ):
        table.add_column(name)
    for r in rows:
        counts = json.loads(r.counts or "{}")
        seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
        table.add_row(
            str(r.id),
            r.job + (" (dry run)" if r.dry_run else ""),
            r.status,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            cell("seconds", seconds),
            str(r.api_calls),
            str(counts.get("records_written", 0)),
            str(counts.get("records_failed", 0)),
            redact(r.error)[:60],  # rows stored before redaction existed too
        )
    console.print(table)


@runs_app.command("show")
def runs_show(ctx: typer.Context, run_id: int) -> None:
    """One run in detail: counts, its per-record write failures, its rejected input rows and
    its rejected conversions."""
    from sqlmodel import Session, col, select

    from connector.store import models
    from connector.store.database import make_engine

    with friendly_errors():
        engine = make_engine(_store_url(ctx.obj), create=False)
    run = require_run(engine, run_id)
    with Session(engine) as session:
        writes = session.exec(
            select(models.FieldWrite).where(models.FieldWrite.run_id == run_id)
        ).all()
        rejected = session.exec(
            select(models.RejectedRow)
            .where(models.RejectedRow.run_id == run_id)
            .order_by(col(models.RejectedRow.id))
        ).all()
        conversions = session.exec(
            select(models.Conversion).where(models.Conversion.run_id == run_id)
        ).all()
    engine.dispose()
    console.print(
        f"run {run.id} · {run.job} · [bold]{run.status}[/] · "
        f"started {run.started_at:%Y-%m-%d %H:%M:%S} UTC"
        f" · {run.api_calls} API calls"
    )
    if run.error:
        console.print(f"error: {redact(run.error)}", markup=False)
    counts = json.loads(run.counts or "{}")
    for key, value in sorted(counts.items()):
        console.print(f"  {key}: {value}")
    whole = models.WHOLE_RECORD
    fields, records = (
        [w for w in writes if w.field != whole],
        [w for w in writes if w.field == whole],
    )
    for title, rows in (("field writes", fields), ("touchpoint records", records)):
        by_status: dict[str, int] = {}
        for w in rows:
            by_status[w.status] = by_status.get(w.status, 0) + 1
        if rows or title == "field writes":
            counted = ", ".join(f"{k} {v}" for k, v in sorted(by_status.items()))
            console.print(f"{title}: " + (counted or "none"))
    failed = [w for w in writes if w.status == "failed"]
    if failed:
        table = Table(title="Write failures")
        for name in ("object", "record", "field", "value", "error"):
            table.add_column(name)
        for w in failed[:200]:
            value = "(the record)" if w.field == whole else w.new_value or ""
            table.add_row(w.crm_object, w.record_id, w.field, value, redact(w.error))
        console.print(table)
    total = sum(v for k, v in counts.items() if k.endswith(".rows_rejected"))
    if total:
        kept = f" (the first {len(rejected)} kept)" if len(rejected) < total else ""
        console.print(f"rejected input rows: {total}{kept}")
        for r in rejected:
            console.print(f"  {r.message}", highlight=False, soft_wrap=True)
    print_conversions(list(conversions))


def print_conversions(conversions: list[Any]) -> None:
    """The run's conversions by status, and each rejected one with the platform's reason."""
    if not conversions:
        return
    by_status: dict[str, int] = {}
    for c in conversions:
        by_status[c.status] = by_status.get(c.status, 0) + 1
    console.print("conversions: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
    rejected = [c for c in conversions if c.status == "rejected"]
    if rejected:
        table = Table(title="Rejected conversions")
        for name in ("conversion", "platform", "to", "deal / person", "dedup id", "reason"):
            table.add_column(name)
        for c in rejected[:200]:
            table.add_row(c.name, c.platform, c.destination, c.subject_id, c.dedup_id, c.reason)
        console.print(table)
