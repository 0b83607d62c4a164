"""The closed-loop report: money in (attributed revenue) against money out (spend).

Per channel and per campaign, for a date range and a model: spend, touches, leads,
opportunities, won deals, revenue, pipeline, ROI, ROAS, CAC, cost per lead and the
lead -> opportunity -> won rates. Leads count by first touch; opportunities, wins, revenue and
pipeline are the chosen model's credit. Spend reaches a channel through its campaign: the channel
most of the campaign's touches have, else the one its platform gives.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, TextClause, bindparam, text
from sqlmodel import Session

from connector.report.conversions import conversion_rows, flat
from connector.store.models import UtcDateTime

_TOUCHES = """
SELECT {dim}, COUNT(*) FROM touchpoint
WHERE channel <> '' AND NOT superseded AND occurred_at >= :start AND occurred_at < :end
GROUP BY {dim}"""
_LEADS = """
SELECT t.{dim}, COUNT(*) FROM contact_journey cj
JOIN touchpoint t ON t.id = cj.first_touch_id
JOIN contact c ON c.id = cj.contact_id
WHERE c.created_at >= :start AND c.created_at < :end
GROUP BY t.{dim}"""
_CREDIT = """
SELECT t.{dim}, cr.model, d.is_won, d.is_closed,
       SUM(CASE WHEN d.created_at >= :start AND d.created_at < :end THEN cr.fraction ELSE 0 END),
       SUM(CASE WHEN d.closed_at >= :start AND d.closed_at < :end THEN cr.fraction ELSE 0 END),
       SUM(CASE WHEN d.closed_at >= :start AND d.closed_at < :end THEN cr.amount ELSE 0 END),
       SUM(cr.amount)
FROM credit cr JOIN touchpoint t ON t.id = cr.touchpoint_id JOIN deal d ON d.id = cr.deal_id
GROUP BY t.{dim}, cr.model, d.is_won, d.is_closed"""
_CAMPAIGN_CHANNEL = """
SELECT campaign_key, channel, COUNT(*) FROM touchpoint
WHERE campaign_key <> '' AND channel <> '' AND NOT superseded
GROUP BY campaign_key, channel"""
_SPEND = """
SELECT platform, campaign_key, campaign, channel, SUM(cost_base), SUM(clicks)
FROM spend WHERE cost_base IS NOT NULL AND day >= :first AND day <= :last
GROUP BY platform, campaign_key, campaign, channel"""
_STAGES = """
SELECT d.stage, t.{dim}, SUM(cr.amount) FROM credit cr
JOIN touchpoint t ON t.id = cr.touchpoint_id JOIN deal d ON d.id = cr.deal_id
WHERE cr.model = :model AND NOT d.is_closed AND t.{dim} <> ''
GROUP BY d.stage, t.{dim} ORDER BY d.stage, t.{dim}"""


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
    conversions: list[dict[str, Any]] = field(default_factory=list)  # sent to the ad platforms

    def records(self, rows: list[Row] | None = None, kind: str = "channel") -> list[dict[str, Any]]:
        out = []
        for r in self.channels if rows is None else rows:
            rec: dict[str, Any] = {kind: r.name}
            if kind == "campaign":
                rec["channel"] = r.channel
                rec["platforms"] = ",".join(sorted(r.platforms))
            rec.update(
                {
                    "spend": round(r.spend, 2),
                    "touches": r.touches,
                    "leads": r.leads,
                    "opportunities": round(r.opportunities, 2),
                    "won_deals": round(r.won_deals, 2),
                }
            )
            for m in self.models:
                rec[f"revenue_{m}"] = round(r.revenue.get(m, 0.0), 2)
            rec["pipeline"] = round(r.pipeline, 2)
            rec.update(
                {k: None if v is None else round(v, 4) for k, v in r.metrics(self.model).items()}
            )
            out.append(rec)
        return out

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "model": self.model,
            "models": self.models,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "funnel": self.funnel(),
            "unmatched_spend": round(self.unmatched_spend, 2),
            "channels": self.records(),
            "campaigns": self.records(self.campaigns, "campaign"),
            "pipeline_by_stage": self.pipeline_by_stage,
            "pipeline_by_stage_campaign": self.pipeline_by_stage_campaign,
            "conversions": self.conversions,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self, kind: str = "channel") -> str:
        records = self.records(self.campaigns, "campaign") if kind == "campaign" else self.records()
        buffer = io.StringIO()
        if records:
            writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
        if self.conversions:  # a second table, after an empty line: conversions sent back
            rows = [flat(r) for r in self.conversions]
            buffer.write("\n")
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return buffer.getvalue()


def _bounds(start: date | None, end: date | None) -> dict[str, Any]:
    """Query parameters: [start, end] as whole days; open ends reach the whole store."""
    first = start or date(1970, 1, 1)
    last = end or date(9999, 12, 30)
    return {
        "start": datetime.combine(first, time.min, tzinfo=UTC),
        "end": datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC),
        "first": first,
        "last": last,
    }


def _sql(query: str) -> TextClause:
    """A query whose datetime parameters go through the store's UTC type on every backend."""
    clause = text(query)
    typed = [bindparam(n, type_=UtcDateTime()) for n in ("start", "end") if f":{n}" in query]
    return clause.bindparams(*typed) if typed else clause


def build_report(
    engine: Engine,
    models: list[str],
    model: str,
    currency: str,
    start: date | None = None,
    end: date | None = None,
) -> ClosedLoopReport:
    """Read the store and assemble the report (nothing is written)."""
    params = _bounds(start, end)
    with Session(engine) as session:
        channels = _rows(session, "channel", model, params)
        campaigns = _rows(session, "campaign_key", model, params)
        campaigns.pop("", None)
        dominant: dict[str, tuple[int, str]] = {}
        for key, channel, n in session.execute(_sql(_CAMPAIGN_CHANNEL)).all():
            if n > dominant.get(key, (0, ""))[0]:
                dominant[key] = (n, channel)
        unmatched = 0.0
        for platform, key, name, channel, cost, _clicks in session.execute(
            _sql(_SPEND), params
        ).all():
            cost = float(cost or 0)
            spend_channel = dominant.get(key, (0, channel or "Unassigned"))[1]
            channels.setdefault(spend_channel, Row(spend_channel)).spend += cost
            row = campaigns.setdefault(key or name, Row(key or name))
            row.spend += cost
            row.platforms.add(platform)
            if key not in dominant:
                unmatched += cost
        for key, row in campaigns.items():
            row.channel = dominant.get(key, (0, ""))[1]
        stages = {dim: _stages(session, dim, model) for dim in ("channel", "campaign_key")}
        conversions = conversion_rows(session, params)

    def order(rows: dict[str, Row]) -> list[Row]:
        return sorted(rows.values(), key=lambda r: (-r.revenue.get(model, 0.0), -r.spend, r.name))

    return ClosedLoopReport(
        models, model, currency, start, end, order(channels), order(campaigns),
        stages["channel"], unmatched, pipeline_by_stage_campaign=stages["campaign_key"],
        conversions=conversions,
    )  # fmt: skip


def _stages(session: Session, dim: str, model: str) -> dict[str, dict[str, float]]:
    """Open pipeline per CRM stage, split by ``dim`` under ``model`` ("28,295 in Proposal")."""
    stages: dict[str, dict[str, float]] = {}
    query = _sql(_STAGES.format(dim=dim))
    for stage, name, amount in session.execute(query, {"model": model}).all():
        stages.setdefault(stage, {})[name] = round(float(amount or 0), 2)
    return stages


def _rows(session: Session, dim: str, model: str, params: dict[str, Any]) -> dict[str, Row]:
    rows: dict[str, Row] = {}

    def row(name: str) -> Row:
        return rows.setdefault(name, Row(name))

    for name, n in session.execute(_sql(_TOUCHES.format(dim=dim)), params).all():
        row(name).touches = int(n)
    for name, n in session.execute(_sql(_LEADS.format(dim=dim)), params).all():
        row(name).leads = int(n)
    credit = session.execute(_sql(_CREDIT.format(dim=dim)), params).all()
    for name, m, won, closed, opened, closed_in, amount_in, amount_all in credit:
        r = row(name)
        if m != model:
            if won:
                r.revenue[m] = r.revenue.get(m, 0.0) + float(amount_in or 0)
            continue
        r.opportunities += float(opened or 0)
        if won:
            r.won_deals += float(closed_in or 0)
            r.revenue[m] = r.revenue.get(m, 0.0) + float(amount_in or 0)
        elif not closed:
            r.pipeline += float(amount_all or 0)
    return rows
