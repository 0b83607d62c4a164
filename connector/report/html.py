"""The closed-loop report as one self-contained HTML page (``closedloop report --format html``).

``render_html(report.to_dict())`` fills the template ``report.html`` next to this module: the
header, key figures and tables are rendered here (escaped, readable without JavaScript); the
report dict is embedded as JSON in ``<script type="application/json" id="report-data">`` and a
small inline script draws the three charts as SVG from it (``data-chart="funnel"``,
``"revenue-spend"``, ``"roi-campaign"``). The page loads nothing: no external CSS, JS, fonts or
images, and its Content-Security-Policy forbids every fetch and allows only that one script
(by hash).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from importlib import resources
from typing import Any, NamedTuple

from connector.report.closed_loop import Row

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CAD": "CA$", "AUD": "A$"}
_NONE = "–"
_MAX_NAMES = 20


@dataclass(frozen=True)
class Money:
    """How amounts of the report's currency are written: ``$1,234`` or ``1,234 CHF``."""

    prefix: str
    suffix: str

    @classmethod
    def of(cls, currency: str) -> Money:
        code = currency.strip().upper()
        if code in _SYMBOLS:
            return cls(_SYMBOLS[code], "")
        return cls("", f" {code}" if code else "")

    def __call__(self, value: float | None, decimals: int = 0) -> str:
        if value is None:
            return _NONE
        sign = "-" if value < 0 and round(value, decimals) != 0 else ""
        return f"{sign}{self.prefix}{abs(value):,.{decimals}f}{self.suffix}"


def count(value: float | None) -> str:
    return _NONE if value is None else f"{value:,.0f}"


def credit(value: float | None) -> str:
    """Fractional model credit (opportunities, won deals): one decimal."""
    return _NONE if value is None else f"{value:,.1f}"


def percent(value: float | None) -> str:
    return _NONE if value is None else f"{value * 100:,.1f}%"


def multiple(value: float | None) -> str:
    return _NONE if value is None else f"{value:,.2f}x"


def _text(value: Any) -> str:
    return escape(str(value)) if value not in (None, "") else _NONE


def model_name(model: str) -> str:
    return model.replace("_", " ").capitalize()


class Column(NamedTuple):
    header: str
    key: str
    cell: Callable[[Any], str]
    numeric: bool = True


def render_html(data: Mapping[str, Any]) -> str:
    """The whole page for ``ClosedLoopReport.to_dict()``; every piece of text is escaped."""
    template = resources.files("connector.report").joinpath("report.html").read_text("utf-8")
    money = Money.of(str(data.get("currency") or ""))
    model = str(data.get("model") or "")
    channels: list[Mapping[str, Any]] = list(data.get("channels") or [])
    campaigns: list[Mapping[str, Any]] = list(data.get("campaigns") or [])
    total = _total(data, channels)
    parts = {
        "csp": _csp(template),
        "title": "Closed-loop revenue report",
        "period": escape(_period(data.get("start"), data.get("end"))),
        "currency": escape(str(data.get("currency") or _NONE)),
        "model": escape(model_name(model)),
        "money_prefix": escape(money.prefix),
        "money_suffix": escape(money.suffix),
        "kpis": _kpis(total, model, money),
        "unmatched": _unmatched(float(data.get("unmatched_spend") or 0), money),
        "roi_note": _roi_note(campaigns),
        "channel_table": _channel_table(channels, total, model, money),
        "campaign_table": _campaign_table(campaigns, model, money),
        "model_section": _model_section(data, channels, money),
        "pipeline_table": _pipeline_table(data.get("pipeline_by_stage") or {}, money),
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


def _period(start: Any, end: Any) -> str:
    if start and end:
        return f"{start} – {end}"
    if start:
        return f"from {start}"
    if end:
        return f"up to {end}"
    return "all dates in the store"


def _num(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def _total(data: Mapping[str, Any], channels: Sequence[Mapping[str, Any]]) -> Row:
    """The whole report as one row, so its ROI etc. come from the report's own formulas."""
    funnel = data.get("funnel") or {}
    model = str(data.get("model") or "")
    return Row(
        "Total",
        spend=_num(funnel, "spend"),
        touches=int(_num(funnel, "touches")),
        leads=int(_num(funnel, "leads")),
        opportunities=_num(funnel, "opportunities"),
        won_deals=_num(funnel, "won_deals"),
        revenue={model: _num(funnel, "revenue")},
        pipeline=sum(_num(c, "pipeline") for c in channels),
    )


def _kpis(total: Row, model: str, money: Money) -> str:
    metrics = total.metrics(model)
    roi = metrics["roi"]
    cards = [
        ("Revenue", money(total.revenue.get(model, 0.0)), False),
        ("Spend", money(total.spend), False),
        ("ROI", percent(roi), roi is not None and roi < 0),
        ("ROAS", multiple(metrics["roas"]), False),
        ("Won deals", credit(total.won_deals), False),
        ("Open pipeline", money(total.pipeline), False),
    ]
    return (
        '<div class="kpis">'
        + "".join(
            f'<div class="kpi"><div class="label">{label}</div>'
            f'<div class="value{" neg" if negative else ""}">{escape(value)}</div></div>'
            for label, value, negative in cards
        )
        + "</div>"
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


def _roi_note(campaigns: Sequence[Mapping[str, Any]]) -> str:
    names = [str(c.get("campaign", "")) for c in campaigns if c.get("roi") is None]
    if not names:
        return ""
    shown = ", ".join(escape(n) for n in names[:_MAX_NAMES])
    more = f" and {len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else ""
    return (
        f'<p class="sub" data-no-spend="{len(names)}">Not shown, no spend recorded '
        f"({len(names)}): {shown}{more}.</p>"
    )


def _metric_columns(model: str, money: Money) -> list[Column]:
    return [
        Column("Spend", "spend", money),
        Column("Touches", "touches", count),
        Column("Leads", "leads", count),
        Column("Opps", "opportunities", credit),
        Column("Won", "won_deals", credit),
        Column(f"Revenue ({model_name(model)})", f"revenue_{model}", money),
        Column("Pipeline", "pipeline", money),
        Column("ROI", "roi", percent),
        Column("ROAS", "roas", multiple),
        Column("CAC", "cac", lambda v: money(v, 2)),
        Column("Cost / lead", "cost_per_lead", lambda v: money(v, 2)),
        Column("Lead → opp", "lead_to_opportunity", percent),
        Column("Opp → won", "opportunity_to_won", percent),
    ]


def _channel_table(
    channels: Sequence[Mapping[str, Any]], total: Row, model: str, money: Money
) -> str:
    if not channels:
        return '<p class="sub">No channel data in this period.</p>'
    columns = [Column("Channel", "channel", _text, numeric=False), *_metric_columns(model, money)]
    totals: dict[str, Any] = {
        "channel": "Total",
        "spend": total.spend,
        "touches": total.touches,
        "leads": total.leads,
        "opportunities": total.opportunities,
        "won_deals": total.won_deals,
        f"revenue_{model}": total.revenue.get(model, 0.0),
        "pipeline": total.pipeline,
        **total.metrics(model),
    }
    return _table("channels", columns, channels, totals)


def _campaign_table(campaigns: Sequence[Mapping[str, Any]], model: str, money: Money) -> str:
    if not campaigns:
        return '<p class="sub">No campaign data in this period.</p>'

    def name(row: Mapping[str, Any]) -> str:
        platforms = str(row.get("platforms") or "")
        small = f"<small>{escape(platforms)}</small>" if platforms else ""
        return f"{escape(str(row.get('campaign', '')))}{small}"

    columns = [
        Column("Campaign", "", name, numeric=False),
        Column("Channel", "channel", _text, numeric=False),
        *_metric_columns(model, money),
    ]
    return _table("campaigns", columns, campaigns)


def _model_section(
    data: Mapping[str, Any], channels: Sequence[Mapping[str, Any]], money: Money
) -> str:
    models = [str(m) for m in data.get("models") or []]
    if len(models) < 2 or not channels:
        return ""
    chosen = str(data.get("model") or "")
    columns = [Column("Channel", "channel", _text, numeric=False)] + [
        Column(model_name(m) + (" (used above)" if m == chosen else ""), f"revenue_{m}", money)
        for m in models
    ]
    totals = {"channel": "Total"} | {
        f"revenue_{m}": sum(_num(c, f"revenue_{m}") for c in channels) for m in models
    }
    return (
        "<section><h2>Revenue by attribution model</h2>"
        '<p class="sub">The same won revenue, credited to channels by each model.</p>'
        + _table("models", columns, channels, totals)
        + "</section>"
    )


def _pipeline_table(stages: Mapping[str, Mapping[str, float]], money: Money) -> str:
    if not stages:
        return '<p class="sub">No open pipeline.</p>'
    names = list(stages)
    by_channel: dict[str, dict[str, float]] = {}
    for stage, amounts in stages.items():
        for channel, amount in amounts.items():
            by_channel.setdefault(channel, {})[stage] = float(amount or 0)
    rows = [
        {"channel": c, **amounts, "total": sum(amounts.values())}
        for c, amounts in sorted(by_channel.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    ]
    columns = [Column("Channel", "channel", _text, numeric=False)]
    columns += [Column(s, s, money) for s in names]
    columns.append(Column("Total", "total", money))
    totals = {"channel": "Total"} | {
        key: sum(float(r.get(key) or 0) for r in rows) for key in [*names, "total"]
    }
    return _table("pipeline", columns, rows, totals)


def _conversions_section(rows: Sequence[Mapping[str, Any]], money: Money) -> str:
    """Conversions sent back to the ad platforms (only when some were)."""
    if not rows:
        return ""
    columns = [
        Column("Platform", "platform", _text, numeric=False),
        Column("Campaign", "campaign", _text, numeric=False),
        Column("Sent", "sent", count),
        Column("Accepted", "accepted", count),
        Column("Rejected", "rejected", count),
        Column("Reasons", "rejected_reasons", _reasons, numeric=False),
        Column("Retracted", "retracted", count),
        Column("Pending", "pending", count),
        Column("Value sent", "value_sent", money),
    ]
    totals = {"platform": "Total", "campaign": ""} | {
        key: sum(_num(r, key) for r in rows)
        for key in ("sent", "accepted", "rejected", "retracted", "pending", "value_sent")
    }
    return (
        "<section><h2>Conversions sent to the ad platforms</h2>"
        '<p class="sub">CRM milestones sent back as offline conversions, by the platform\'s '
        "campaign of the person's last ad touch. Rejected: refused by the platform, or held "
        "back because it would refuse them.</p>"
        + _table("conversions", columns, rows, totals)
        + "</section>"
    )


def _reasons(value: Any) -> str:
    if not isinstance(value, Mapping) or not value:
        return _NONE
    return escape("; ".join(f"{k} {v}" for k, v in value.items()))


def _table(
    kind: str,
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, Any]],
    totals: Mapping[str, Any] | None = None,
) -> str:
    head = "".join(
        f'<th scope="col" class="{"num" if c.numeric else "name"}">{escape(c.header)}</th>'
        for c in columns
    )

    def line(row: Mapping[str, Any]) -> str:
        cells = []
        for c in columns:
            value = row.get(c.key) if c.key else row
            if not c.numeric:
                cells.append(f'<td class="name">{c.cell(value)}</td>')
                continue
            negative = isinstance(value, int | float) and value < 0
            cells.append(
                f'<td class="num{" neg" if negative else ""}">{escape(c.cell(value))}</td>'
            )
        return "<tr>" + "".join(cells) + "</tr>"

    body = "".join(line(r) for r in rows)
    compact = ' class="compact"' if len(columns) <= 8 else ""
    foot = f"<tfoot>{line(totals)}</tfoot>" if totals else ""
    return (
        f'<div class="table-wrap"><table data-table="{kind}"{compact}>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table></div>"
    )
