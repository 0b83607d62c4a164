"""Commands for a first start: demo, init, doctor, schema."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from connector.cli.common import (
    DEFAULT_CONFIG,
    EXIT_CODES,
    ConfigOption,
    _load,
    _stop_on_signals,
    console,
    err,
    friendly_errors,
)
from connector.cli.report import build_report
from connector.cli.run import run_and_summarise


def demo(
    crm: Annotated[
        str, typer.Option(help="The CRM to emulate: hubspot or salesforce.")
    ] = "hubspot",
    workdir: Annotated[
        Path,
        typer.Option(
            "--dir",
            help="Where the demo writes its config and store: a new or empty folder, or an "
            "earlier demo's (only its own files are replaced).",
        ),
    ] = Path("closedloop-demo"),
    contacts: Annotated[int, typer.Option(help="Contacts in the synthetic company.")] = 2000,
    seed: int = 7,
) -> None:
    """Run the whole loop against local emulators of HubSpot or Salesforce, GA4, Google Ads,
    Meta Ads and LinkedIn Ads (no account needed), then show the report and a few contacts."""
    from connector.demo.emulators import prepare_folder, start_demo
    from connector.demo.synthetic import generate
    from connector.report.terminal import print_report

    if crm not in {"hubspot", "salesforce"}:
        raise typer.BadParameter("expected hubspot or salesforce", param_hint="--crm")
    if contacts < 10:
        raise typer.BadParameter("at least 10", param_hint="--contacts")
    started = time.perf_counter()
    stop = _stop_on_signals()  # Ctrl-C: stop cleanly at the next step, never mid-request
    with friendly_errors():
        prepare_folder(workdir)  # refuse someone else's folder before any work
        console.print(
            f"[bold]closedloop demo[/]: a synthetic company; emulators of {crm}, GA4, "
            "Google Ads, Meta Ads and LinkedIn Ads on 127.0.0.1, offline CSVs"
        )
        company = generate(seed=seed, contacts=contacts, visits=max(20000, contacts * 10))
        systems = start_demo(workdir, crm, company, touchpoint_records=True)
    console.print(
        f"seeded {len(company.people):,} contacts, {len(company.visits):,} GA4 sessions, "
        f"{len(company.deals):,} deals"
    )
    try:
        if stop.is_set():
            raise _interrupted("before its sync; nothing was run")
        with friendly_errors():
            loaded = _load(systems.config_path)
            ctx, run = run_and_summarise(loaded, stop=stop)
            try:
                if run.status == "interrupted":
                    raise _interrupted("the run stopped after its batch in flight")
                print_report(console, build_report(loaded))
                _show_contacts(ctx, crm)
                _show_conversions(ctx)
                _show_journey(ctx)
            finally:
                ctx.close()
    finally:
        served = systems.requests_served()
        systems.stop()
    elapsed = time.perf_counter() - started
    console.print(
        "API requests served: "
        + ", ".join(f"{k} {v}" for k, v in served.items())
        + f" · wall time {elapsed:.1f} s"
    )
    config = systems.config_path
    console.print(
        f"\nThe emulators stopped with the demo; its config, store and CSVs stay in {workdir}/.\n"
        "Go on with what it stored (a new sync against this config cannot run: nothing answers "
        "at its addresses any more):\n"
        f"  closedloop report -c {config} --by campaign\n"
        f"  closedloop report -c {config} --format html -o report.html\n"
        f"  closedloop runs -c {config} show {run.id}\n"
        f"Run the demo again for a fresh sync; connect your own systems with: closedloop init "
        "my-setup",
        highlight=False,
        soft_wrap=True,
    )


def _interrupted(what: str) -> typer.Exit:
    err.print(f"demo interrupted (Ctrl-C): {what}; the emulators are stopped")
    return typer.Exit(EXIT_CODES["interrupted"])


def _show_contacts(ctx: Any, crm: str) -> None:
    from sqlmodel import Session, col, select

    from connector.demo.emulators import PERSON_NAME_FIELDS
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
    names = [*PERSON_NAME_FIELDS[crm], ctx.mapping.identity.email or ""]
    by_object: dict[str, list[str]] = {}
    for obj, crm_id in rows:
        by_object.setdefault(obj, []).append(crm_id)
    table = Table(title="Contacts as a sales rep now sees them (read back from the CRM)")
    table.add_column("person")
    for f in fields:
        table.add_column(f)
    for obj, ids in by_object.items():
        values = ctx.crm.read_values(obj, ids, [*names, *fields])
        for crm_id in ids:
            record = values.get(crm_id, {})
            first, last, email = (record.get(n) or "" for n in names)
            person = f"{first} {last}".strip().title() + f"\n{email.strip()}"
            table.add_row(person, *[record.get(f) or "" for f in fields])
    console.print(table)


def _show_conversions(ctx: Any) -> None:
    """How many conversions each ad platform accepted (what its bidding now learns from)."""
    from sqlmodel import Session, func, select

    from connector.store import models

    conv = models.Conversion
    with Session(ctx.engine) as session:
        rows = session.exec(
            select(conv.platform, conv.status, func.count()).group_by(conv.platform, conv.status)
        ).all()
    by_platform: dict[str, dict[str, int]] = {}
    for platform, status, n in rows:
        by_platform.setdefault(platform, {})[status] = n
    parts = [
        f"{platform} {counts.get('accepted', 0)} accepted"
        + "".join(f", {n} {status}" for status, n in sorted(counts.items()) if status != "accepted")
        for platform, counts in sorted(by_platform.items())
    ]
    console.print("Won deals sent back as conversions: " + (" · ".join(parts) or "none"))


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
    """Write commented example config/ (with the sample CSVs it names) and mappings/ into
    TARGET; a file that exists is kept, never overwritten."""
    from connector.demo.emulators import shipped_folder

    for name, pattern in (
        ("config", "*.yaml"),
        ("config/samples", "*.csv"),
        ("mappings", "*.yaml"),
    ):
        destination = target / name
        destination.mkdir(parents=True, exist_ok=True)
        for source in sorted(shipped_folder(name).glob(pattern)):
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


def doctor(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Check everything a sync needs and list every problem: secrets, key and data files,
    mappings, the store, the CRM's fields (mapped, identity, UTM) and each source's access.

    Exit code: 0 all good, 2 a problem in the files (config, secrets, mappings), 1 a system
    that does not answer as it should. Writes nothing.
    """
    from connector.config.loader import load_config
    from connector.run.doctor import diagnose

    with friendly_errors():
        loaded = load_config(config, allow_missing_secrets=True)
        findings = diagnose(loaded)
    marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
    if not loaded.missing_secrets:
        console.print(f"{marks['ok']} {config}: valid, secrets present")
    for mark, text in findings:
        console.print(f"{marks[mark]} {text}", highlight=False)
    failed = [text for mark, text in findings if mark == "fail"]
    if failed:
        console.print(f"{len(failed)} problem(s) found")
        in_files = loaded.missing_secrets or any(".yaml:" in text for text in failed)
        raise typer.Exit(2 if in_files else 1)


def schema(target: Annotated[Path, typer.Argument()] = Path("schemas")) -> None:
    """Write the JSON Schemas of the config and mapping files (for editor validation)."""
    from connector.config.mappings import json_schemas

    target.mkdir(parents=True, exist_ok=True)
    for name, body in json_schemas().items():
        (target / f"{name}.schema.json").write_text(json.dumps(body, indent=2) + "\n")
        console.print(f"wrote {target / f'{name}.schema.json'}")
