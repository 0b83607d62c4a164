"""The closed-loop report as one self-contained HTML page (``closedloop report --format html``).

``render_html(report.to_dict(by))`` fills the template ``report.html`` next to this module for
one view (channels or campaigns): the header, key figures and tables are rendered here (escaped,
readable without JavaScript); the report dict is embedded as JSON in
``<script type="application/json" id="report-data">`` and a small inline script draws the three
charts as SVG from it (``data-chart="funnel"``, ``"revenue-spend"``, ``"roi"``). The page
loads nothing: no external CSS, JS, fonts or images, and its Content-Security-Policy forbids
every fetch and allows only that one script (by hash).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import partial
from html import escape
from importlib import resources
from typing import Any

from connector.report.cells import (
    NONE,
    Column,
    Money,
    count,
    credit,
    model_name,
    multiple,
    num,
    percent,
    table,
    text,
)
from connector.report.closed_loop import VIEWS

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_MAX_NAMES = 20


def render_html(data: Mapping[str, Any]) -> str:
    """The whole page for ``ClosedLoopReport.to_dict(by)``; every piece of text is escaped."""
    template = resources.files("connector.report").joinpath("report.html").read_text("utf-8")
    money = Money.of(str(data.get("currency") or ""))
    model = str(data.get("model") or "")
    by = "campaign" if data.get("by") == "campaign" else "channel"
    rows: list[Mapping[str, Any]] = list(data.get(VIEWS[by]) or [])
    totals: Mapping[str, Any] = data.get("totals") or {}
    parts = {
        "csp": _csp(template),
        "title": "Closed-loop revenue report",
        "period": escape(_period(data)),
        "currency": escape(str(data.get("currency") or NONE)),
        "model": escape(model_name(model)),
        "dimension": by,
        "dimensions": VIEWS[by],
        "Dimensions": VIEWS[by].capitalize(),
        "money_prefix": escape(money.prefix),
        "money_suffix": escape(money.suffix),
        "kpis": _kpis(data, by, money),
        "unmatched": _unmatched(float(data.get("unmatched_spend") or 0), money),
        "roi_note": _roi_note(rows, by),
        "main_table": _main_table(rows, totals, by, model, money),
        "model_section": _model_section(data, rows, totals, by, money),
        "pipeline_table": _pipeline_table(data, by, money),
        "journey": _journey(data.get("journey") or {}),
        "conversions_section": _conversions_section(data.get("conversions") or [], money),
        "data": script_json(data),
    }
    return _PLACEHOLDER.sub(lambda m: parts[m[1]], template)


def script_json(data: Mapping[str, Any]) -> str:
    """JSON that is safe inside a <script> element: no `<`, `>` or `&` survive literally."""
    text = json.dumps(_finite(data), separators=(",", ":"), default=str, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON.parse would reject them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _csp(template: str) -> str:
    """Nothing may be fetched; the one inline script runs because its hash is listed."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(template)
    )
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'"
    )


def _period(data: Mapping[str, Any]) -> str:
    """The days the report covers: the data's own first and last day (within any range asked)."""
    span = data.get("period") or {}
    first, last = span.get("first") or data.get("start"), span.get("last") or data.get("end")
    if first and last:
        return f"{first} – {last}"
    return "no dated data in the store"


def _kpis(data: Mapping[str, Any], by: str, money: Money) -> str:
    """The headline: the CRM's closed-won revenue and how much of it touches explain, then paid
    ROI (rows with spend) apart from revenue with no spend behind it, then the deals."""
    totals: Mapping[str, Any] = data.get("totals") or {}
    paid: Mapping[str, Any] = data.get("paid") or {}
    model = str(data.get("model") or "")
    won = num(totals, "won_total")
    attributed = num(totals.get("attributed") or {}, model)
    share = f" ({attributed / won:.0%})" if won else ""
    roi = paid.get("roi")
    groups = [
        ("Closed-won revenue (CRM)", [
            ("CRM closed-won total", money(won, 2), False),
            ("Attributed to touches" + share, money(attributed, 2), False),
            ("Unattributed (no touch)", money(num(totals.get("unattributed") or {}, model), 2),
             False),
            ("With no spend behind it", money(num(paid, "revenue_without_spend"), 2), False),
        ]),
        (f"Paid ROI ({by}s with spend)", [
            ("Paid revenue", money(num(paid, "revenue"), 2), False),
            ("Spend", money(num(paid, "spend"), 2), False),
            ("Paid ROI", percent(roi), isinstance(roi, int | float) and roi < 0),
            ("Paid ROAS", multiple(paid.get("roas")), False),
        ]),
        ("Deals", [
            ("Won deals (CRM)", count(num(totals, "won_deals")), False),
            ("Open pipeline (CRM)", money(num(totals, "pipeline_total"), 2), False),
            ("Pipeline unattributed",
             money(num(totals.get("pipeline_unattributed") or {}, model), 2), False),
            ("Open deals (CRM)", count(num(totals, "open_deals")), False),
        ]),
    ]  # fmt: skip
    return "".join(
        f'<h2 class="kpi-group">{escape(title)}</h2><div class="kpis">'
        + "".join(
            f'<div class="kpi"><div class="label">{escape(label)}</div>'
            f'<div class="value{" neg" if negative else ""}">{escape(value)}</div></div>'
            for label, value, negative in cards
        )
        + "</div>"
        for title, cards in groups
    )


def _unmatched(amount: float, money: Money) -> str:
    if amount <= 0:
        return ""
    return (
        f'<p class="note" data-unmatched-spend="{amount}"><strong>Unmatched spend: '
        f"{escape(money(amount))}.</strong> It belongs to campaigns no tracked touchpoint "
        "carries (check the UTM campaign values). It is counted in its platform's channel "
        "and in the totals, but no revenue can be attributed to it.</p>"
    )


def _roi_note(rows: Sequence[Mapping[str, Any]], by: str) -> str:
    names = [str(r.get(by, "")) for r in rows if r.get("roi") is None]
    if not names:
        return ""
    shown = ", ".join(escape(n) for n in names[:_MAX_NAMES])
    more = f" and {len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else ""
    return (
        f'<p class="sub" data-no-spend="{len(names)}">Not shown, no spend recorded '
        f"({len(names)}): {shown}{more}.</p>"
    )


def _metric_columns(model: str, money: Money) -> list[Column]:
    cent = partial(money, decimals=2)
    return [
        Column("Spend", "spend", cent),
        Column("Touches", "touches", count),
        Column("Leads", "leads", count),
        Column("Opps (credit)", "opportunities", credit),
        Column("Won (credit)", "won_deals", credit),
        Column(f"Revenue ({model_name(model)} credit)", f"revenue_{model}", cent),
        Column("Pipeline (credit)", "pipeline", cent),
        Column("ROI", "roi", percent),
        Column("ROAS", "roas", multiple),
        Column("CAC", "cac", cent),
        Column("Cost / lead", "cost_per_lead", cent),
        Column("Lead → opp", "lead_to_opportunity", percent),
        Column("Opp → won", "opportunity_to_won", percent),
    ]


def _footer(
    rows: Sequence[Mapping[str, Any]], totals: Mapping[str, Any], by: str,
    models: Sequence[str], model: str,
) -> list[dict[str, Any]]:  # fmt: skip
    """Attributed total (the rows' sums), Unattributed (no touch) and the CRM's total; revenue
    per model in ``models``, won deals and pipeline under ``model``."""
    attributed: dict[str, Any] = {by: "Attributed total"} | {
        k: sum(num(r, k) for r in rows)
        for k in ("spend", "touches", "leads", "opportunities", "won_deals", "pipeline")
    }
    gap: dict[str, Any] = {by: "Unattributed (no touch)"}
    total: dict[str, Any] = {by: "CRM total", "spend": attributed["spend"]}
    for m in models:
        attributed[f"revenue_{m}"] = num(totals.get("attributed") or {}, m)
        gap[f"revenue_{m}"] = num(totals.get("unattributed") or {}, m)
        total[f"revenue_{m}"] = num(totals, "won_total")
    gap["won_deals"] = num(totals.get("unattributed_won_deals") or {}, model)
    gap["pipeline"] = num(totals.get("pipeline_unattributed") or {}, model)
    total["won_deals"] = num(totals, "won_deals")
    total["pipeline"] = num(totals, "pipeline_total")
    return [attributed, gap, total]


def _main_table(
    rows: Sequence[Mapping[str, Any]], totals: Mapping[str, Any], by: str, model: str,
    money: Money,
) -> str:  # fmt: skip
    if not rows and not totals.get("won_deals"):
        return f'<p class="sub">No {by} data in this period.</p>'

    def name(row: Mapping[str, Any]) -> str:
        platforms = str(row.get("platforms") or "")
        small = f"<small>{escape(platforms)}</small>" if platforms else ""
        return f"{text(row.get(by))}{small}"

    columns = [Column(by.capitalize(), "", name, numeric=False)]
    if by == "campaign":
        columns.append(Column("Channel", "channel", text, numeric=False))
    columns += _metric_columns(model, money)
    return table(VIEWS[by], columns, rows, _footer(rows, totals, by, [model], model))


def _model_section(
    data: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], totals: Mapping[str, Any],
    by: str, money: Money,
) -> str:  # fmt: skip
    models = [str(m) for m in data.get("models") or []]
    if len(models) < 2 or not rows:
        return ""
    chosen = str(data.get("model") or "")
    cent = partial(money, decimals=2)
    columns = [Column(by.capitalize(), by, text, numeric=False)] + [
        Column(model_name(m) + (" (used above)" if m == chosen else ""), f"revenue_{m}", cent)
        for m in models
    ]
    return (
        "<section><h2>Revenue by attribution model</h2>"
        '<p class="sub">The same won revenue, credited by each model; under every model the '
        "rows plus the unattributed line make the CRM's closed-won total.</p>"
        + table("models", columns, rows, _footer(rows, totals, by, models, chosen))
        + "</section>"
    )


def _pipeline_table(data: Mapping[str, Any], by: str, money: Money) -> str:
    stages: Mapping[str, Mapping[str, float]] = data.get("pipeline_by_stage") or {}
    stage_totals: Mapping[str, float] = data.get("pipeline_stage_totals") or {}
    if not stages:
        return '<p class="sub">No open pipeline.</p>'
    names = list(stages)
    by_name: dict[str, dict[str, float]] = {}
    for stage, amounts in stages.items():
        for key, amount in amounts.items():
            by_name.setdefault(key, {})[stage] = float(amount or 0)
    gap = by_name.pop("Unattributed (no touch)", {})
    rows = [
        {by: c, **amounts, "total": sum(amounts.values())}
        for c, amounts in sorted(by_name.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    ]
    cent = partial(money, decimals=2)
    columns = [Column(by.capitalize(), by, text, numeric=False)]
    columns += [Column(s, s, cent) for s in names]
    columns.append(Column("Total", "total", cent))
    attributed = {by: "Attributed total"} | {
        key: sum(float(r.get(key) or 0) for r in rows) for key in [*names, "total"]
    }
    unattributed = {by: "Unattributed (no touch)", **gap, "total": sum(gap.values())}
    crm = {by: "CRM total", **stage_totals, "total": sum(stage_totals.values())}
    return table("pipeline", columns, rows, [attributed, unattributed, crm])


def _journey(journey: Mapping[str, Any]) -> str:
    """What the numbers count, with this report's settings; the README defines it in full."""
    window = journey.get("window_days")
    base = (
        "every contact of the deal's account"
        if journey.get("account_based")
        else ("the deal's contacts (a lead converted into a contact counts as that contact)")
    )
    return (
        '<section id="journey"><h2>What a journey is</h2><p class="sub">A deal\'s journey is '
        f"every touch of {escape(base)}"
        + (f" in the {int(window)} days" if isinstance(window, int) else "")
        + " before its milestone: the end of its close date in the CRM's time zone for closed "
        "deals (touches during the close day count), its creation for open pipeline. A "
        "person's creation is the earliest of the contact and the leads converted into it. "
        "Deals whose journey has no touch are unattributed. Full definition: README.md, "
        "section &ldquo;What a journey is&rdquo;.</p></section>"
    )


def _conversions_section(rows: Sequence[Mapping[str, Any]], money: Money) -> str:
    """Conversions sent back to the ad platforms (only when some were)."""
    if not rows:
        return ""
    columns = [
        Column("Platform", "platform", text, numeric=False),
        Column("Campaign", "campaign", text, numeric=False),
        Column("Sent", "sent", count),
        Column("Accepted", "accepted", count),
        Column("Rejected", "rejected", count),
        Column("Reasons", "rejected_reasons", _reasons, numeric=False),
        Column("Retracted", "retracted", count),
        Column("Pending", "pending", count),
        Column("Value sent", "value_sent", money),
    ]
    totals = {"platform": "Total", "campaign": ""} | {
        key: sum(num(r, key) for r in rows)
        for key in ("sent", "accepted", "rejected", "retracted", "pending", "value_sent")
    }
    return (
        "<section><h2>Conversions sent to the ad platforms</h2>"
        '<p class="sub">CRM milestones sent back as offline conversions, by the platform\'s '
        "campaign of the person's last ad touch. Rejected: refused by the platform, or held "
        "back because it would refuse them.</p>"
        + table("conversions", columns, rows, [totals])
        + "</section>"
    )


def _reasons(value: Any) -> str:
    if not isinstance(value, Mapping) or not value:
        return NONE
    return escape("; ".join(f"{k} {v}" for k, v in value.items()))
