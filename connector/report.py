"""The closed-loop report: per channel, money in (attributed revenue) against money out (spend)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session

_TOUCHES = "SELECT channel, COUNT(*) FROM touchpoint WHERE channel <> '' GROUP BY channel"
_LEADS = """
SELECT t.channel, COUNT(*) FROM contact_journey cj JOIN touchpoint t ON t.id = cj.first_touch_id
GROUP BY t.channel"""
_CREDIT = """
SELECT t.channel, cr.model, d.is_won, SUM(cr.amount), SUM(cr.fraction)
FROM credit cr JOIN touchpoint t ON t.id = cr.touchpoint_id JOIN deal d ON d.id = cr.deal_id
GROUP BY t.channel, cr.model, d.is_won"""
_SPEND = "SELECT channel, SUM(cost_base) FROM spend WHERE cost_base IS NOT NULL GROUP BY channel"
_STAGES = """
SELECT d.stage, t.channel, SUM(cr.amount) FROM credit cr
JOIN touchpoint t ON t.id = cr.touchpoint_id JOIN deal d ON d.id = cr.deal_id
WHERE cr.model = :model AND NOT d.is_closed GROUP BY d.stage, t.channel"""


@dataclass
class ChannelRow:
    channel: str
    touches: int = 0
    leads: int = 0
    won_deals: float = 0.0
    revenue: dict[str, float] = field(default_factory=dict)
    pipeline: float = 0.0
    spend: float = 0.0

    def roi(self, model: str) -> float | None:
        return (self.revenue.get(model, 0.0) - self.spend) / self.spend if self.spend else None

    def roas(self, model: str) -> float | None:
        return self.revenue.get(model, 0.0) / self.spend if self.spend else None

    def cac(self) -> float | None:
        return self.spend / self.won_deals if self.spend and self.won_deals else None


@dataclass
class ChannelReport:
    models: list[str]
    report_model: str
    currency: str
    rows: list[ChannelRow]
    pipeline_by_stage: dict[str, dict[str, float]]

    def records(self) -> list[dict[str, Any]]:
        out = []
        for r in self.rows:
            rec: dict[str, Any] = {
                "channel": r.channel,
                "touches": r.touches,
                "leads": r.leads,
                "won_deals": round(r.won_deals, 2),
            }
            for m in self.models:
                rec[f"revenue_{m}"] = round(r.revenue.get(m, 0.0), 2)
            rec.update(
                {
                    "pipeline": round(r.pipeline, 2),
                    "spend": round(r.spend, 2),
                    "roi": _round(r.roi(self.report_model)),
                    "roas": _round(r.roas(self.report_model)),
                    "cac": _round(r.cac()),
                }
            )
            out.append(rec)
        return out

    def to_csv(self) -> str:
        records = self.records()
        buffer = io.StringIO()
        if records:
            writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
        return buffer.getvalue()

    def to_json(self) -> str:
        return json.dumps(
            {
                "currency": self.currency,
                "report_model": self.report_model,
                "channels": self.records(),
                "pipeline_by_stage": self.pipeline_by_stage,
            },
            indent=2,
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def channel_report(
    engine: Engine, models: list[str], report_model: str, currency: str
) -> ChannelReport:
    rows: dict[str, ChannelRow] = {}

    def row(channel: str) -> ChannelRow:
        return rows.setdefault(channel, ChannelRow(channel))

    with Session(engine) as session:
        run = session.execute
        for channel, n in run(text(_TOUCHES)).all():
            row(channel).touches = int(n)
        for channel, n in run(text(_LEADS)).all():
            row(channel).leads = int(n)
        for channel, model, won, amount, fractions in run(text(_CREDIT)).all():
            r = row(channel)
            if won:
                r.revenue[model] = r.revenue.get(model, 0.0) + float(amount or 0)
                if model == report_model:
                    r.won_deals += float(fractions or 0)
            elif model == report_model:
                r.pipeline += float(amount or 0)
        for channel, cost in run(text(_SPEND)).all():
            row(channel or "Unassigned").spend += float(cost or 0)
        stages: dict[str, dict[str, float]] = defaultdict(dict)
        for stage, channel, amount in run(text(_STAGES), {"model": report_model}).all():
            stages[stage][channel] = round(float(amount or 0), 2)
    ordered = sorted(rows.values(), key=lambda r: (-r.revenue.get(report_model, 0.0), r.channel))
    return ChannelReport(models, report_model, currency, ordered, dict(stages))
