"""The closed-loop report as a Rich table in the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from connector.report.conversions import COLUMNS, flat

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


def print_report(console: Console, report: Any, by: str = "channel") -> None:
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
        table.add_row(*[cell(k, rec[k]) for k in keys])
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
    print_conversions(console, report)


def print_conversions(console: Console, report: Any) -> None:
    """Conversions sent back to the ad platforms, per platform and campaign."""
    if not report.conversions:
        return
    table = Table(title=f"Conversions sent to the ad platforms · value in {report.currency}")
    for key in ("platform", "campaign", "sent", "accepted", "rejected", "rejected reasons",
                "retracted", "pending", "value sent"):  # fmt: skip
        table.add_column(key, justify="left" if key in {"platform", "campaign"} else "right")
    for rec in map(flat, report.conversions):
        table.add_row(*[cell(k, rec[k]) for k in COLUMNS])
    console.print(table)


def cell(key: str, value: Any) -> str:
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
