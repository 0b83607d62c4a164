"""The closed-loop report: money in (attributed revenue) against money out (spend), reconciled
with the CRM.

One *view* per dimension, channel or campaign, for a date range and a model: spend, touches,
leads, opportunities, won deals, revenue, pipeline, ROI, ROAS, CAC, cost per lead and the
lead -> opportunity -> won rates. Leads count by first touch; opportunities, won deals, revenue
and pipeline are the model's credit (credit-weighted: a deal split over three channels counts a
third in each). Touches without a campaign (none, or a GA4 placeholder such as ``(direct)``)
form the campaign view's "No campaign" row.

Every view reconciles with the CRM (:class:`Totals`): per model, its rows' revenue plus the
"Unattributed (no touch)" line is the CRM's closed-won total of the period in base currency, to
the cent, and the same for open pipeline. Money is rounded to cents so that the rows add up
(largest remainders), never by dropping the difference.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

UNATTRIBUTED = "Unattributed (no touch)"
NO_CAMPAIGN = "No campaign"
CRM_TOTAL = "CRM total"
VIEWS = {"channel": "channels", "campaign": "campaigns"}


@dataclass
class Row:
    """One channel or campaign."""

    name: str
    spend: float = 0.0
    touches: int = 0
    leads: int = 0
    opportunities: float = 0.0
    won_deals: float = 0.0
    revenue: dict[str, float] = field(default_factory=dict)
    pipeline: float = 0.0
    platforms: set[str] = field(default_factory=set)
    channel: str = ""

    def ratio(self, numerator: float, denominator: float) -> float | None:
        return numerator / denominator if denominator else None

    def metrics(self, model: str) -> dict[str, float | None]:
        revenue = self.revenue.get(model, 0.0)
        return {
            "roi": self.ratio(revenue - self.spend, self.spend),
            "roas": self.ratio(revenue, self.spend),
            "cac": self.ratio(self.spend, self.won_deals) if self.spend else None,
            "cost_per_lead": self.ratio(self.spend, self.leads) if self.spend else None,
            "lead_to_opportunity": self.ratio(self.opportunities, self.leads),
            "opportunity_to_won": self.ratio(self.won_deals, self.opportunities),
        }


@dataclass
class Totals:
    """What the CRM holds, in base currency: the numbers every view reconciles against.

    ``won`` sums every deal won in the period that has an amount in a currency with a rate;
    ``not_converted`` lists the amounts that have none (outside every total).
    """

    won: float = 0.0
    won_deals: int = 0
    credited_won_deals: dict[str, int] = field(default_factory=dict)  # per model
    pipeline: float = 0.0
    open_deals: int = 0
    pipeline_credit: dict[str, float] = field(default_factory=dict)  # per model
    not_converted: list[dict[str, Any]] = field(default_factory=list)
    won_without_amount: int = 0


def cents(value: float) -> int:
    return round(value * 100)


def split_cents(values: Sequence[float]) -> list[int]:
    """Each value in cents, rounded so that they sum to their rounded sum (largest remainder)."""
    exact = [v * 100 for v in values]
    out = [math.floor(x) for x in exact]
    short = round(math.fsum(exact)) - sum(out)
    for i in sorted(range(len(exact)), key=lambda i: out[i] - exact[i])[: max(short, 0)]:
        out[i] += 1
    return out


@dataclass
class ClosedLoopReport:
    models: list[str]
    model: str
    currency: str
    start: date | None
    end: date | None
    channels: list[Row]
    campaigns: list[Row]
    pipeline_by_stage: dict[str, dict[str, float]]  # stage -> channel -> open amount
    unmatched_spend: float
    pipeline_by_stage_campaign: dict[str, dict[str, float]] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)
    stage_totals: dict[str, float] = field(default_factory=dict)  # stage -> open amount
    period: tuple[date | None, date | None] = (None, None)  # first and last day with data
    journey: dict[str, Any] = field(default_factory=dict)  # how journeys were cut
    conversions: list[dict[str, Any]] = field(default_factory=list)  # sent to the ad platforms

    def rows(self, by: str = "channel") -> list[Row]:
        return self.campaigns if by == "campaign" else self.channels

    def _money(self, rows: Sequence[Row]) -> dict[str, list[int]]:
        """Cents of each money column, adding up to the column's rounded total."""
        columns = {"spend": [r.spend for r in rows], "pipeline": [r.pipeline for r in rows]}
        columns |= {f"revenue_{m}": [r.revenue.get(m, 0.0) for r in rows] for m in self.models}
        return {key: split_cents(values) for key, values in columns.items()}

    def records(self, rows: list[Row] | None = None, kind: str = "channel") -> list[dict[str, Any]]:
        rows = self.channels if rows is None else rows
        money = self._money(rows)
        out = []
        for i, r in enumerate(rows):
            rec: dict[str, Any] = {kind: r.name}
            if kind == "campaign":
                rec["channel"] = r.channel
                rec["platforms"] = ",".join(sorted(r.platforms))
            rec.update(
                {
                    "spend": money["spend"][i] / 100,
                    "touches": r.touches,
                    "leads": r.leads,
                    "opportunities": round(r.opportunities, 2),
                    "won_deals": round(r.won_deals, 2),
                }
            )
            for m in self.models:
                rec[f"revenue_{m}"] = money[f"revenue_{m}"][i] / 100
            rec["pipeline"] = money["pipeline"][i] / 100
            rec.update(
                {k: None if v is None else round(v, 4) for k, v in r.metrics(self.model).items()}
            )
            out.append(rec)
        return out

    def reconciliation(self, by: str = "channel") -> dict[str, Any]:
        """The view's totals: attributed (its rows) + unattributed = the CRM's, per model."""
        t, money = self.totals, self._money(self.rows(by))
        won, pipeline = cents(t.won), cents(t.pipeline)
        attributed = {m: sum(money[f"revenue_{m}"]) for m in self.models}
        piped = {m: cents(t.pipeline_credit.get(m, 0.0)) for m in self.models}
        piped[self.model] = sum(money["pipeline"])
        return {
            "won_total": won / 100,
            "won_deals": t.won_deals,
            "attributed": {m: a / 100 for m, a in attributed.items()},
            "unattributed": {m: (won - a) / 100 for m, a in attributed.items()},
            "unattributed_won_deals": {
                m: t.won_deals - t.credited_won_deals.get(m, 0) for m in self.models
            },
            "won_deals_without_amount": t.won_without_amount,
            "pipeline_total": pipeline / 100,
            "open_deals": t.open_deals,
            "pipeline_attributed": {m: p / 100 for m, p in piped.items()},
            "pipeline_unattributed": {m: (pipeline - p) / 100 for m, p in piped.items()},
            "not_converted": t.not_converted,
        }

    def lines(self, by: str = "channel") -> list[dict[str, Any]]:
        """The "Unattributed (no touch)" and "CRM total" lines under a view's rows."""
        keys = list(self.records([Row("")], by)[0])
        rec = self.reconciliation(by)
        spend = sum(self._money(self.rows(by))["spend"]) / 100
        gap: dict[str, Any] = dict.fromkeys(keys) | {
            by: UNATTRIBUTED,
            "won_deals": rec["unattributed_won_deals"][self.model],
            "pipeline": rec["pipeline_unattributed"][self.model],
        }
        total: dict[str, Any] = dict.fromkeys(keys) | {
            by: CRM_TOTAL,
            "spend": spend,
            "won_deals": rec["won_deals"],
            "pipeline": rec["pipeline_total"],
        }
        for m in self.models:
            gap[f"revenue_{m}"] = rec["unattributed"][m]
            total[f"revenue_{m}"] = rec["won_total"]
        return [gap, total]

    def paid(self, by: str = "channel") -> dict[str, float | None]:
        """ROI where money was spent, apart from revenue with no spend behind it."""
        records = self.records(self.rows(by), by)
        key = f"revenue_{self.model}"
        paid = [r for r in records if r["spend"] > 0]
        revenue = math.fsum(r[key] for r in paid)
        spend = math.fsum(r["spend"] for r in paid)
        unpaid = math.fsum(r[key] for r in records if r["spend"] <= 0)
        return {
            "revenue": round(revenue, 2),
            "spend": round(spend, 2),
            "roi": round((revenue - spend) / spend, 4) if spend else None,
            "roas": round(revenue / spend, 4) if spend else None,
            "revenue_without_spend": round(unpaid, 2),
        }

    def funnel(self) -> dict[str, float]:
        rows = self.channels
        return {
            "touches": sum(r.touches for r in rows),
            "leads": sum(r.leads for r in rows),
            "opportunities": round(sum(r.opportunities for r in rows), 2),
            "won_deals": round(sum(r.won_deals for r in rows), 2),
            "revenue": round(sum(r.revenue.get(self.model, 0.0) for r in rows), 2),
            "spend": round(sum(r.spend for r in rows), 2),
        }

    def stages(self, by: str = "channel") -> dict[str, dict[str, float]]:
        """Open pipeline per stage (in pipeline order) and channel or campaign, with each
        stage's unattributed part: every stage's values add up to its CRM total."""
        by_stage = self.pipeline_by_stage_campaign if by == "campaign" else self.pipeline_by_stage
        out: dict[str, dict[str, float]] = {}
        for stage, total in self.stage_totals.items():
            names = by_stage.get(stage, {})
            split = split_cents(list(names.values()))
            out[stage] = {n: c / 100 for n, c in zip(names, split, strict=True)}
            gap = cents(total) - sum(split)
            if gap:
                out[stage][UNATTRIBUTED] = gap / 100
        return out

    def to_dict(self, by: str = "channel") -> dict[str, Any]:
        first, last = self.period
        return {
            "by": by,
            "currency": self.currency,
            "model": self.model,
            "models": self.models,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "period": {
                "first": first.isoformat() if first else None,
                "last": last.isoformat() if last else None,
            },
            "journey": self.journey,
            "funnel": self.funnel(),
            "paid": self.paid(by),
            "unmatched_spend": round(self.unmatched_spend, 2),
            VIEWS[by]: self.records(self.rows(by), by),
            "totals": self.reconciliation(by),
            "pipeline_by_stage": self.stages(by),
            "pipeline_stage_totals": {s: cents(v) / 100 for s, v in self.stage_totals.items()},
            "conversions": self.conversions,
        }

    def to_json(self, by: str = "channel") -> str:
        return json.dumps(self.to_dict(by), indent=2)

    def to_csv(self, by: str = "channel") -> str:
        """The view's rows, then its "Unattributed (no touch)" and "CRM total" lines."""
        records = self.records(self.rows(by), by) + self.lines(by)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()
