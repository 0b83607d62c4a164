"""Commands that read results: report (the closed loop) and paths (a path table)."""

from __future__ import annotations

import io
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from connector.cli.common import DEFAULT_CONFIG, ConfigOption, _load, console, friendly_errors
from connector.kernel.errors import ConfigError


def build_report(
    loaded: Any, model: str | None = None, start: date | None = None, end: date | None = None
) -> Any:
    from connector.config.campaigns import load_campaign_rules
    from connector.config.settings import MODEL_NAMES
    from connector.report.queries import build_report as assemble
    from connector.store.database import make_engine

    sync = loaded.config.sync
    chosen = model or sync.report_model
    models = list(dict.fromkeys([*sync.models, sync.report_model]))
    if chosen not in MODEL_NAMES:
        raise typer.BadParameter(
            f"unknown model {chosen!r}; expected one of {', '.join(MODEL_NAMES)}",
            param_hint="--model",
        )
    if chosen not in models:
        raise ConfigError(
            f"model {chosen!r} was not computed; add it to sync.models "
            f"(computed: {', '.join(models)})"
        )
    campaigns = loaded.config.mappings.campaigns
    rules = load_campaign_rules(loaded.resolve(campaigns) if campaigns else None)
    journey = {
        "window_days": sync.attribution_window_days,
        "account_based": sync.attribution.account_based,
    }
    engine = make_engine(loaded.store_url(), create=False)  # a report never makes a store
    try:
        return assemble(
            engine, models, chosen, loaded.config.currency.base, start, end,
            campaign_names={rule.name for rule in rules.campaigns}, journey=journey,
        )  # fmt: skip
    finally:
        engine.dispose()


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
    """Spend, touches, leads, opportunities, wins, revenue, ROI, ROAS, CAC per channel|campaign,
    with the CRM's closed-won and pipeline totals they reconcile to."""
    if by not in {"channel", "campaign"}:
        raise typer.BadParameter("expected channel or campaign", param_hint="--by")
    if format not in {"table", "csv", "json", "html"}:
        raise typer.BadParameter("expected table, csv, json or html", param_hint="--format")
    if start and end and start > end:
        raise typer.BadParameter(f"--start {start:%Y-%m-%d} is after --end {end:%Y-%m-%d}")
    with friendly_errors():
        result = build_report(_load(config), model, start and start.date(), end and end.date())
    from connector.report.terminal import print_report

    if format == "table":
        if not output:
            print_report(console, result, by)
            return
        buffer = io.StringIO()
        print_report(Console(file=buffer, width=160, color_system=None), result, by)
        body = buffer.getvalue()
    elif format == "html":
        from connector.report.html import render_html

        body = render_html(result.to_dict(by))
    else:
        body = result.to_json(by) + "\n" if format == "json" else result.to_csv(by)
    if output:
        output.write_text(body, encoding="utf-8")
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(body)


def paths(
    file: Path,
    models: Annotated[
        str, typer.Option(help="Comma-separated models.")
    ] = "first_touch,last_touch,linear,markov",
    sep: str = ">",
    format: Annotated[str, typer.Option("--format", help="csv | json | table")] = "csv",
) -> None:
    """Attribute a ChannelAttribution-style path table (path, total_conversions, ...)."""
    from connector.attribution.paths import paths_report

    with friendly_errors():
        sys.stdout.write(paths_report(file, models.split(","), sep, format))
