"""The ``closedloop`` command (Typer + Rich)."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from connector.errors import ClosedloopError, ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
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
    """connector.progress.Progress drawn as Rich bars."""

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
    try:
        yield
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/]\n{exc}", highlight=False)
        raise typer.Exit(2) from None
    except ClosedloopError as exc:
        err.print(f"[bold red]error[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


LogFormat = Annotated[str, typer.Option("--log-format", help="text | json (JSON lines)")]
EXIT_CODES = {"succeeded": 0, "failed": 1, "interrupted": 3, "incomplete": 4}


def _setup_logging(verbose: bool, fmt: str = "text", secrets: Any = ()) -> None:
    from connector.logs import setup_logging

    setup_logging(fmt, logging.INFO if verbose else logging.WARNING, secrets)


def _stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT ask the run to stop after the batch in flight (it is then 'interrupted')."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _load(config: Path) -> Any:
    from connector.config import load_config

    return load_config(config)


REPORT_COLUMNS = {
    "won_deals": "won",
    "opportunities": "opps",
    "cost_per_lead": "cost/lead",
    "lead_to_opportunity": "lead→opp",
    "opportunity_to_won": "opp→won",
    "roi": "ROI",
    "roas": "ROAS",
    "cac": "CAC",
}
HIDDEN_IN_TABLE = {"platforms"}


def print_report(report: Any, by: str = "channel") -> None:
    rows = report.campaigns if by == "campaign" else report.channels
    records = report.records(rows, by)
    if not records:
        console.print("no data yet: run `closedloop sync` first")
        return
    period = f"{report.start or '…'} to {report.end or '…'}"
    table = Table(
        title=f"Closed loop by {by} · {period} · {report.currency} · "
        f"ROI, ROAS and CAC on the {report.model} model"
    )
    other_models = {f"revenue_{m}" for m in report.models if m != report.model}
    hidden = HIDDEN_IN_TABLE | (other_models if by == "campaign" else set())
    keys = [k for k in records[0] if k not in hidden]
    for key in keys:
        header = REPORT_COLUMNS.get(key) or key.replace("revenue_", "rev ").replace("_", " ")
        table.add_column(header, justify="left" if key in {"channel", "campaign"} else "right")
    for rec in records:
        table.add_row(*[_cell(k, rec[k]) for k in keys])
    console.print(table)
    if report.unmatched_spend:
        console.print(
            f"[yellow]spend not joined to any touch (see mappings/campaigns.yaml): "
            f"{report.unmatched_spend:,.0f} {report.currency}[/]"
        )
    by_stage = report.pipeline_by_stage if by == "channel" else report.pipeline_by_stage_campaign
    if by_stage:
        stages = Table(title=f"Open pipeline by stage and {by} ({report.model})")
        stages.add_column("stage")
        stages.add_column(f"top {by}s")
        for stage, channels in sorted(by_stage.items()):
            top = sorted(channels.items(), key=lambda kv: -kv[1])[:3]
            stages.add_row(stage, ", ".join(f"{c} {v:,.0f}" for c, v in top))
        console.print(stages)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key == "roi":
        return f"{value:+.0%}"
    if key in {"lead_to_opportunity", "opportunity_to_won"}:
        return f"{value:.0%}"
    if key == "roas":
        return f"{value:.2f}x"
    if key in {"won_deals", "opportunities"}:
        return f"{value:,.1f}"
    if isinstance(value, float):
        return f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def build_report(
    loaded: Any, model: str | None = None, start: date | None = None, end: date | None = None
) -> Any:
    from connector.report import build_report as assemble
    from connector.store import make_engine

    sync = loaded.config.sync
    chosen = model or sync.report_model
    models = list(dict.fromkeys([*sync.models, sync.report_model]))
    if chosen not in models:
        raise ConfigError(
            f"model {chosen!r} was not computed; add it to sync.models "
            f"(computed: {', '.join(models)})"
        )
    engine = make_engine(loaded.store_url())
    try:
        return assemble(engine, models, chosen, loaded.config.currency.base, start, end)
    finally:
        engine.dispose()


def run_and_summarise(
    loaded: Any, only: str | None = None, stop: threading.Event | None = None
) -> Any:
    from connector.context import build_context
    from connector.sync import run_sync

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


@app.command()
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
    from connector.sync import STEPS

    _setup_logging(verbose, log_format)
    if only is not None and only not in STEPS:
        raise typer.BadParameter(f"expected one of {', '.join(STEPS)}", param_hint="--only")
    with friendly_errors():
        loaded = _load(config)
        _setup_logging(verbose, log_format, loaded.secrets)
        if dry_run:
            from connector.context import build_context
            from connector.sync import run_sync

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


@app.command()
def report(
    config: ConfigOption = DEFAULT_CONFIG,
    model: Annotated[str | None, typer.Option(help="Model for ROI, ROAS and CAC.")] = None,
    by: Annotated[str, typer.Option(help="channel | campaign")] = "channel",
    start: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day.")] = None,
    end: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last day.")] = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help="table | csv | json | html")
    ] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Spend, touches, leads, opportunities, wins, revenue, ROI, ROAS, CAC per channel|campaign."""
    if by not in {"channel", "campaign"}:
        raise typer.BadParameter("expected channel or campaign", param_hint="--by")
    if format not in {"table", "csv", "json", "html"}:
        raise typer.BadParameter("expected table, csv, json or html", param_hint="--format")
    with friendly_errors():
        result = build_report(_load(config), model, start and start.date(), end and end.date())
    if format == "table":
        print_report(result, by)
        return
    if format == "html":
        from connector.report_html import render_html

        body = render_html(result.to_dict())
    else:
        body = result.to_json() + "\n" if format == "json" else result.to_csv(by)
    if output:
        output.write_text(body, encoding="utf-8")
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(body)


@app.command()
def demo(
    crm: Annotated[
        str, typer.Option(help="hubspot (more CRMs as their adapters land)")
    ] = "hubspot",
    workdir: Annotated[
        Path, typer.Option("--dir", help="Where the demo writes its config and store.")
    ] = Path("closedloop-demo"),
    contacts: Annotated[int, typer.Option(help="Contacts in the synthetic company.")] = 2000,
    seed: int = 7,
) -> None:
    """Run the whole loop against local emulators of the CRM and GA4 (no account needed)."""
    from connector.demo import start_demo
    from connector.synthetic import generate

    started = time.perf_counter()
    console.print(
        f"[bold]closedloop demo[/]: a synthetic company; emulators of {crm}, GA4, Google Ads, "
        "Meta Ads and LinkedIn Ads on 127.0.0.1, offline CSVs"
    )
    company = generate(seed=seed, contacts=contacts, visits=max(20000, contacts * 10))
    console.print(
        f"seeded {len(company.people):,} contacts, {len(company.visits):,} GA4 sessions, "
        f"{len(company.deals):,} deals"
    )
    systems = start_demo(workdir, crm, company)
    try:
        with friendly_errors():
            loaded = _load(systems.config_path)
            ctx, run = run_and_summarise(loaded)
            print_report(build_report(loaded))
            _show_contacts(ctx)
    finally:
        served = systems.requests_served()
        systems.stop()
    elapsed = time.perf_counter() - started
    console.print(
        "API requests served: "
        + ", ".join(f"{k} {v}" for k, v in served.items())
        + f" · wall time {elapsed:.1f} s · config and store in {workdir}/"
    )
    console.print(
        f"Next: [bold]closedloop report -c {systems.config_path}[/] · "
        f"[bold]closedloop init my-setup[/] to start on your own portal"
    )


def _show_contacts(ctx: Any) -> None:
    from sqlmodel import Session, col, select

    from connector import models

    with Session(ctx.engine) as session:
        rows = session.exec(
            select(models.Contact.crm_object, models.Contact.crm_id)
            .join(
                models.ContactJourney,
                col(models.ContactJourney.contact_id) == col(models.Contact.id),
            )
            .order_by(col(models.ContactJourney.touch_count).desc(), col(models.Contact.crm_id))
            .limit(5)
        ).all()
    shown = (
        "first_touch.channel",
        "lead_creation_touch.channel",
        "last_touch.channel",
        "touch_count",
        "channel_path",
    )
    fields = [m.field for m in ctx.mapping.fields if m.value in shown]
    by_object: dict[str, list[str]] = {}
    for obj, crm_id in rows:
        by_object.setdefault(obj, []).append(crm_id)
    table = Table(title="Contacts as a sales rep now sees them (read back from the CRM)")
    table.add_column("record")
    for f in fields:
        table.add_column(f)
    for obj, ids in by_object.items():
        values = ctx.crm.read_values(obj, ids, fields)
        for crm_id in ids:
            table.add_row(f"{obj}/{crm_id}", *[values.get(crm_id, {}).get(f) or "" for f in fields])
    console.print(table)


@app.command()
def init(target: Annotated[Path, typer.Argument(help="Folder to create.")] = Path(".")) -> None:
    """Write commented example config/ and mappings/ into TARGET."""
    from connector.demo import shipped_folder

    for name in ("config", "mappings"):
        destination = target / name
        destination.mkdir(parents=True, exist_ok=True)
        for source in sorted(shipped_folder(name).glob("*.yaml")):
            if source.name == "demo.yaml":
                continue
            out = destination / source.name
            if out.exists():
                console.print(f"kept {out} (exists)")
                continue
            shutil.copy(source, out)
            console.print(f"wrote {out}")
    console.print(
        f"Edit {target / 'config' / 'closedloop.yaml'}, export the secrets it names, "
        f"then run: closedloop doctor -c {target / 'config' / 'closedloop.yaml'}"
    )


def _source_problems(source: Any) -> list[str]:
    """A source's own checks, or else one small read (yesterday's spend) to prove access."""
    from datetime import timedelta

    from connector.timeutil import utcnow

    try:
        if hasattr(source, "check"):
            return list(source.check())
        next(iter(source.spend(utcnow() - timedelta(days=1))), None)
        return []
    except ClosedloopError as exc:
        return [str(exc)]


@app.command()
def doctor(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Check config, secrets, APIs, and that every mapped field exists and is writable."""
    from connector.context import build_context
    from connector.writeback import preflight, targets

    ok = True
    with friendly_errors():
        loaded = _load(config)
        console.print(f"[green]✓[/] {config}: valid, secrets present")
        ctx = build_context(loaded)
        ctx.dry_run = True
        console.print(
            f"[green]✓[/] mappings valid: {len(ctx.mapping.fields)} person fields, "
            f"{len(ctx.mapping.deal_fields)} deal fields"
        )
        try:
            specs = preflight(ctx)
            console.print(
                f"[green]✓[/] {ctx.crm_kind} reachable; mapped fields fit "
                + ", ".join(f"{o} ({len(s)} fields)" for o, s in specs.items())
            )
            missing = [
                f"{obj}.{m.field}"
                for obj, _, mappings in targets(ctx)
                for m in mappings
                if m.field not in specs.get(obj, {})
            ]
            if missing:
                console.print(f"[yellow]![/] will be created on first sync: {', '.join(missing)}")
        except ClosedloopError as exc:
            ok = False
            console.print(f"[red]✗[/] {ctx.crm_kind}: {exc}")
        for name, source in ctx.sources.items():
            problems = _source_problems(source)
            ok = ok and not problems
            mark = "[red]✗[/]" if problems else "[green]✓[/]"
            console.print(f"{mark} source {name}: " + ("; ".join(problems) or "reachable"))
        ctx.close()
    if not ok:
        raise typer.Exit(1)


@app.command()
def schema(target: Annotated[Path, typer.Argument()] = Path("schemas")) -> None:
    """Write the JSON Schemas of the config and mapping files (for editor validation)."""
    from connector.mappings import json_schemas

    target.mkdir(parents=True, exist_ok=True)
    for name, body in json_schemas().items():
        (target / f"{name}.schema.json").write_text(json.dumps(body, indent=2) + "\n")
        console.print(f"wrote {target / f'{name}.schema.json'}")


@app.command()
def paths(
    file: Path,
    models: Annotated[
        str, typer.Option(help="Comma-separated models.")
    ] = "first_touch,last_touch,linear,markov",
    sep: str = ">",
    format: Annotated[str, typer.Option("--format", help="csv | json | table")] = "csv",
) -> None:
    """Attribute a ChannelAttribution-style path table (path, total_conversions, ...)."""
    from connector.paths import paths_report

    with friendly_errors():
        sys.stdout.write(paths_report(file, models.split(","), sep, format))


@app.command()
def serve(
    config: ConfigOption = DEFAULT_CONFIG, verbose: bool = True, log_format: LogFormat = ""
) -> None:
    """Run the scheduled jobs of `service.jobs`, with /healthz and /metrics, until SIGTERM."""
    from connector.service import serve as run_service

    with friendly_errors():
        loaded = _load(config)
        _setup_logging(verbose, log_format or loaded.config.service.log_format, loaded.secrets)
        code = run_service(config)
    raise typer.Exit(code)


@app.command()
def rollback(
    run_id: Annotated[int, typer.Argument(help="The run whose writes to undo.")],
    config: ConfigOption = DEFAULT_CONFIG,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be restored.")
    ] = False,
) -> None:
    """Restore the values RUN overwrote, where the CRM still holds what closedloop wrote."""
    from connector.context import build_context
    from connector.rollback import rollback as do_rollback
    from connector.sync import run_job

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


@app.command()
def forget(
    email: Annotated[str, typer.Option("--email", help="The person's address (any spelling).")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Erasure request: remove a person's identities, touchpoints and credits from the store."""
    from connector.privacy import forget_email
    from connector.store import job_lock, make_engine

    with friendly_errors():
        engine = make_engine(_load(config).store_url())
        with job_lock(engine, "sync"):
            gone = forget_email(engine, email)
        engine.dispose()
    console.print(
        f"removed {gone.contacts} contact record(s) with {gone.identities} identities, "
        f"{gone.touchpoints} touchpoints and {gone.credits} attribution credits; "
        "erase the person in the CRM too, or the next sync reads them again"
    )


runs_app = typer.Typer(help="Run history.", invoke_without_command=True)
app.add_typer(runs_app, name="runs")


@runs_app.callback()
def runs(ctx: typer.Context, config: ConfigOption = DEFAULT_CONFIG, limit: int = 20) -> None:
    """List recent runs: status, duration, counts, errors."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = config
        return
    from sqlmodel import Session, col, select

    from connector import models
    from connector.store import make_engine

    with friendly_errors():
        engine = make_engine(_load(config).store_url())
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
            _cell("seconds", seconds),
            str(r.api_calls),
            str(counts.get("records_written", 0)),
            str(counts.get("records_failed", 0)),
            r.error[:60],
        )
    console.print(table)


@runs_app.command("show")
def runs_show(ctx: typer.Context, run_id: int) -> None:
    """One run in detail, with its per-record write failures."""
    from sqlmodel import Session, select

    from connector import models
    from connector.store import make_engine

    with friendly_errors():
        engine = make_engine(_load(ctx.obj).store_url())
    with Session(engine) as session:
        run = session.get(models.SyncRun, run_id)
        if run is None:
            err.print(f"there is no run {run_id}")
            raise typer.Exit(1)
        writes = session.exec(
            select(models.FieldWrite).where(models.FieldWrite.run_id == run_id)
        ).all()
    console.print(
        f"run {run.id} · {run.job} · [bold]{run.status}[/] · "
        f"started {run.started_at:%Y-%m-%d %H:%M:%S} UTC"
        f" · {run.api_calls} API calls"
    )
    if run.error:
        console.print(f"error: {run.error}")
    for key, value in sorted(json.loads(run.counts or "{}").items()):
        console.print(f"  {key}: {value}")
    by_status: dict[str, int] = {}
    for w in writes:
        by_status[w.status] = by_status.get(w.status, 0) + 1
    console.print(
        "field writes: " + (", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none")
    )
    failed = [w for w in writes if w.status == "failed"]
    if failed:
        table = Table(title="Write failures")
        for name in ("object", "record", "field", "value", "error"):
            table.add_column(name)
        for w in failed[:200]:
            table.add_row(w.crm_object, w.record_id, w.field, w.new_value or "", w.error)
        console.print(table)


if __name__ == "__main__":
    app()
