"""The closed-loop report as Rich tables (a terminal, or text piped or written to a file)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table

from connector.report.closed_loop import CRM_TOTAL, UNATTRIBUTED, ClosedLoopReport
from connector.report.conversions import COLUMNS, flat

REPORT_COLUMNS = {
    "won_deals": "won (credit)",
    "opportunities": "opps (credit)",
    "pipeline": "pipeline (credit)",
    "cost_per_lead": "cost/lead",
    "lead_to_opportunity": "lead→opp",
    "opportunity_to_won": "opp→won",
    "roi": "ROI",
    "roas": "ROAS",
    "cac": "CAC",
}
HIDDEN_IN_TABLE = {"platforms"}
MONEY = {"spend", "pipeline", "cac", "cost_per_lead"}


def header(key: str) -> str:
    if key.startswith("revenue_"):
        return f"rev {key.removeprefix('revenue_')} (credit)"
    return REPORT_COLUMNS.get(key) or key.replace("_", " ")


def period(report: ClosedLoopReport) -> str:
    first, last = report.period
    if first and last:
        return f"{first} to {last}"
    return "no dated data yet"


@contextmanager
def natural_width(console: Console, renderable: RenderableType) -> Iterator[None]:
    """Text that is piped or written to a file gets the table's full width: a pipe has no
    width to fit, and a cut header ("opp…") is a lost one."""
    width = console.width
    if not console.is_terminal:
        wanted = console.measure(renderable, options=console.options.update_width(10**6))
        console.width = max(width, wanted.maximum)
    try:
        yield
    finally:
        console.width = width


def show(console: Console, renderable: RenderableType) -> None:
    with natural_width(console, renderable):
        console.print(renderable)


def print_report(console: Console, report: ClosedLoopReport, by: str = "channel") -> None:
    records = report.records(report.rows(by), by)
    totals = report.totals
    if not records and not totals.won_deals and not totals.open_deals:
        console.print("no data yet: run `closedloop sync` first")
        return
    table = Table(
        title=f"Closed loop by {by} · {period(report)} · {report.currency} · "
        f"ROI, ROAS and CAC on the {report.model} model",
        caption="(credit): credit-weighted, each deal's share under the model. "
        f"{UNATTRIBUTED}: won and open deals with no touch in their journey. "
        f"{CRM_TOTAL}: every deal won in the period (revenue) and every open deal (pipeline).",
        caption_justify="left",
    )
    other_models = {f"revenue_{m}" for m in report.models if m != report.model}
    hidden = HIDDEN_IN_TABLE | (other_models if by == "campaign" else set())
    keys = [k for k in (records or report.lines(by))[0] if k not in hidden]
    for key in keys:
        table.add_column(header(key), justify="left" if key in {"channel", "campaign"} else "right")
    for n, rec in enumerate(records, 1):
        table.add_row(*[cell(k, rec[k]) for k in keys], end_section=n == len(records))
    gap, total = report.lines(by)
    table.add_row(*[line_cell(k, gap[k]) for k in keys], style="yellow")
    table.add_row(*[line_cell(k, total[k]) for k in keys], style="bold")
    show(console, table)
    paid = report.paid(by)
    money = f"{{:,.2f}} {report.currency}".format
    roi = "–" if paid["roi"] is None else f"{paid['roi']:+.0%}"
    console.print(
        f"Paid {by}s (with spend): revenue {money(paid['revenue'])} on spend "
        f"{money(paid['spend'])}, ROI {roi}. Revenue with no spend behind it: "
        f"{money(paid['revenue_without_spend'])}."
    )
    if report.unmatched_spend:
        console.print(
            f"[yellow]spend not joined to any touch (see mappings/campaigns.yaml): "
            f"{report.unmatched_spend:,.2f} {report.currency}[/]"
        )
    for item in totals.not_converted:
        console.print(
            f"[yellow]{item['deals']} deal(s) in {item['currency']} ({item['amount']:,.2f}) "
            "have no rate to the base currency: add one under currency.rates[/]"
        )
    print_stages(console, report, by)
    print_conversions(console, report)


def print_stages(console: Console, report: ClosedLoopReport, by: str) -> None:
    by_stage = report.stages(by)
    if not by_stage:
        return
    stages = Table(title=f"Open pipeline by stage and {by} ({report.model} credit)")
    stages.add_column("stage")
    stages.add_column(f"top {by}s")
    stages.add_column("unattributed", justify="right")
    stages.add_column("CRM total", justify="right")
    for stage, amounts in by_stage.items():
        named = {k: v for k, v in amounts.items() if k != UNATTRIBUTED}
        top = sorted(named.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        stages.add_row(
            stage,
            ", ".join(f"{c} {v:,.0f}" for c, v in top),
            f"{amounts.get(UNATTRIBUTED, 0.0):,.2f}",
            f"{report.stage_totals.get(stage, 0.0):,.2f}",
        )
    show(console, stages)


def line_cell(key: str, value: Any) -> str:
    return "" if value is None else cell(key, value)


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
    show(console, table)


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
    if key in MONEY or key.startswith("revenue_"):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
