"""Commands for a first start: demo, init, doctor, schema."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from connector.cli.common import DEFAULT_CONFIG, ConfigOption, _load, console, friendly_errors
from connector.cli.report import build_report
from connector.cli.run import run_and_summarise
from connector.kernel.errors import ClosedloopError
from connector.report.terminal import print_report


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
    from connector.demo.emulators import start_demo
    from connector.demo.synthetic import generate

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
    systems = start_demo(workdir, crm, company, touchpoint_records=True)
    try:
        with friendly_errors():
            loaded = _load(systems.config_path)
            ctx, run = run_and_summarise(loaded)
            print_report(console, build_report(loaded))
            _show_contacts(ctx)
            _show_journey(ctx)
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

    from connector.store import models

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


def _show_journey(ctx: Any) -> None:
    """One contact's touchpoint records, read back from the CRM, in time order with credits."""
    from sqlalchemy import func, select
    from sqlmodel import Session

    from connector.run.touch_records import writer_of
    from connector.store import models
    from connector.store.database import table_of

    outcome = ctx.touch_plan
    if outcome is None or outcome.skipped:
        console.print(f"touchpoint records: {outcome.skipped if outcome else 'off'}")
        return
    tr = table_of(models.TouchRecord)
    with Session(ctx.engine) as session:  # the person with the most opportunity-level records
        person = session.execute(
            select(tr.c.person_id)
            .where(tr.c.key.startswith("cl-o-"))
            .group_by(tr.c.person_id)
            .order_by(func.count().desc(), tr.c.person_id)
            .limit(1)
        ).scalar()
        keys = session.execute(select(tr.c.key).where(tr.c.person_id == person)).scalars().all()
    cfg = ctx.mapping.touchpoint_records
    by_value = {m.value: m.field for m in cfg.active_fields() if m.value}
    shown = [
        by_value[v] for v in ("occurred_at", "channel", "campaign", "position") if v in by_value
    ]
    credits = [(m.model, m.credit_field) for m in cfg.models]
    writer = writer_of(ctx)
    records = writer.read(list(keys), [*shown, *(f for _, f in credits)])
    deal = ctx.crm.deal_object
    table = Table(
        title=f"The journey of contact {person} as {writer.object_name} records, read back from "
        "the CRM (credit: the deal's share per model)"
    )
    for name in [*shown, deal, *(model for model, _ in credits)]:
        table.add_column(name, justify="right" if name in dict(credits) else "left")
    order = by_value.get("occurred_at", "")
    for record in sorted(records.values(), key=lambda r: (r.values.get(order) or "", r.crm_id)):
        table.add_row(
            *[_cell(f == order, record.values.get(f)) for f in shown],
            record.links.get(deal) or "",
            *[_percent(record.values.get(f)) for _, f in credits],
        )
    console.print(table)


def _cell(is_time: bool, value: str | None) -> str:
    """A record's value as the table shows it (times to the minute)."""
    text = value or ""
    return text[:16].replace("T", " ") if is_time else text


def _percent(value: str | None) -> str:
    return "" if value is None else f"{float(value):.0%}"


def init(target: Annotated[Path, typer.Argument(help="Folder to create.")] = Path(".")) -> None:
    """Write commented example config/ and mappings/ into TARGET."""
    from connector.demo.emulators import shipped_folder

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

    from connector.kernel.timeutil import utcnow

    try:
        if hasattr(source, "check"):
            return list(source.check())
        next(iter(source.spend(utcnow() - timedelta(days=1))), None)
        return []
    except ClosedloopError as exc:
        return [str(exc)]


def doctor(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Check config, secrets, APIs, and that every mapped field exists and is writable."""
    from connector.run.context import build_context
    from connector.run.preflight import preflight, targets

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
        fits, line = _touch_records_check(ctx)
        ok = ok and fits
        console.print(line)
        for name, source in ctx.sources.items():
            problems = _source_problems(source)
            ok = ok and not problems
            mark = "[red]✗[/]" if problems else "[green]✓[/]"
            console.print(f"{mark} source {name}: " + ("; ".join(problems) or "reachable"))
        ctx.close()
    if not ok:
        raise typer.Exit(1)


def _touch_records_check(ctx: Any) -> tuple[bool, str]:
    """Doctor's line on touchpoint records: off, skipped (the CRM cannot hold them), to be
    created on the first sync, or the object with every mapped field."""
    from connector.kernel.errors import Unavailable
    from connector.run.touch_records import preflight, writer_of

    if not ctx.mapping.touchpoint_records.enabled:
        return True, "[green]✓[/] touchpoint records: off (touchpoint_records.enabled)"
    try:
        schema = preflight(ctx, writer_of(ctx))
    except Unavailable as exc:
        return True, f"[yellow]![/] touchpoint records will be skipped: {exc}"
    except ClosedloopError as exc:
        return False, f"[red]✗[/] touchpoint records: {exc}"
    if schema.pending:
        return True, (
            f"[yellow]![/] touchpoint records: the {schema.object} object will be created on "
            "the first sync, with every mapped field"
        )
    return True, (
        f"[green]✓[/] touchpoint records: {schema.object} exists; every mapped field is there "
        "and writable"
    )


def schema(target: Annotated[Path, typer.Argument()] = Path("schemas")) -> None:
    """Write the JSON Schemas of the config and mapping files (for editor validation)."""
    from connector.config.mappings import json_schemas

    target.mkdir(parents=True, exist_ok=True)
    for name, body in json_schemas().items():
        (target / f"{name}.schema.json").write_text(json.dumps(body, indent=2) + "\n")
        console.print(f"wrote {target / f'{name}.schema.json'}")
