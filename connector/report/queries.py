"""The closed-loop report read from the store (nothing is written).

The period selects deals by their close date as the CRM shows it (its own time zone), touches,
leads and opportunities by the UTC day they happened on, spend by its day. Spend reaches a
channel through its campaign: the channel most of the campaign's touches have, else the one its
platform gives. A campaign's name is the source's own spelling (the one most of its touches
carry, else its spend's), or the name a rule of ``campaigns.yaml`` gives it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, TextClause, bindparam, func, select, text
from sqlmodel import Session

from connector.report.closed_loop import NO_CAMPAIGN, ClosedLoopReport, Row, Totals
from connector.report.conversions import conversion_rows
from connector.store import models
from connector.store.database import table_of
from connector.store.models import UtcDateTime, credit_model_code, credit_model_name_sql

_TOUCHES = """
SELECT {dim}, COUNT(*) FROM touchpoint
WHERE channel <> '' AND NOT superseded AND occurred_at >= :start AND occurred_at < :end
GROUP BY {dim}"""
_LEADS = """
SELECT t.{dim}, COUNT(*) FROM contact_journey cj
JOIN touchpoint t ON t.id = cj.first_touch_id
JOIN contact c ON c.id = cj.contact_id
WHERE COALESCE(cj.created_at, c.created_at) >= :start
  AND COALESCE(cj.created_at, c.created_at) < :end
GROUP BY t.{dim}"""
_IN_PERIOD = "d.close_date >= :first AND d.close_date <= :last"
_MODEL = credit_model_name_sql("cr.model")  # the store keeps a model's code
_CREDIT = f"""
SELECT t.{{dim}}, {_MODEL}, d.is_won, d.is_closed,
       SUM(CASE WHEN d.created_at >= :start AND d.created_at < :end THEN cr.fraction ELSE 0 END),
       SUM(CASE WHEN {_IN_PERIOD} THEN cr.fraction ELSE 0 END),
       SUM(CASE WHEN {_IN_PERIOD} THEN cr.amount ELSE 0 END),
       SUM(cr.amount)
FROM credit cr JOIN touchpoint t ON t.id = cr.touchpoint_id JOIN deal d ON d.id = cr.deal_id
GROUP BY t.{{dim}}, {_MODEL}, d.is_won, d.is_closed"""
_CAMPAIGN_CHANNEL = """
SELECT campaign_key, channel, COUNT(*) FROM touchpoint
WHERE campaign_key <> '' AND channel <> '' AND NOT superseded
GROUP BY campaign_key, channel"""
_SPELLINGS = """
SELECT campaign_key, utm_campaign, COUNT(*) FROM touchpoint WHERE campaign_key <> ''
GROUP BY campaign_key, utm_campaign"""
_SPEND_SPELLINGS = """
SELECT campaign_key, campaign, COUNT(*) FROM spend WHERE campaign_key <> ''
GROUP BY campaign_key, campaign"""
_SPEND = """
SELECT platform, campaign_key, campaign, channel, SUM(cost_base), SUM(clicks)
FROM spend WHERE cost_base IS NOT NULL AND day >= :first AND day <= :last
GROUP BY platform, campaign_key, campaign, channel"""
_STAGE = "COALESCE(NULLIF(d.stage_label, ''), d.stage)"
_STAGES = f"""
SELECT {_STAGE}, t.{{dim}}, SUM(cr.amount) FROM credit cr
JOIN touchpoint t ON t.id = cr.touchpoint_id JOIN deal d ON d.id = cr.deal_id
WHERE cr.model = :model AND NOT d.is_closed
GROUP BY {_STAGE}, t.{{dim}} ORDER BY {_STAGE}, t.{{dim}}"""
# The CRM's side: every deal won in the period and every open deal, and who got credit.
_DEALS = f"""
SELECT d.id, d.is_won, d.amount, d.currency, d.amount_base, {_STAGE}, d.stage_order
FROM deal d WHERE (d.is_won AND {_IN_PERIOD}) OR NOT d.is_closed"""
_CREDITED = f"""
SELECT DISTINCT {_MODEL}, cr.deal_id FROM credit cr JOIN deal d ON d.id = cr.deal_id
WHERE d.is_won"""
_OPEN_CREDIT = f"""
SELECT {_MODEL}, SUM(cr.amount) FROM credit cr JOIN deal d ON d.id = cr.deal_id
WHERE NOT d.is_closed GROUP BY {_MODEL}"""


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
    models_: list[str],
    model: str,
    currency: str,
    start: date | None = None,
    end: date | None = None,
    campaign_names: Collection[str] = (),
    journey: dict[str, Any] | None = None,
) -> ClosedLoopReport:
    """Read the store and assemble the report. ``campaign_names`` are the names rules of
    campaigns.yaml give (shown as they are); ``journey`` says how journeys were cut."""
    params = _bounds(start, end)
    with Session(engine) as session:
        channels = _rows(session, "channel", model, params)
        campaigns = _rows(session, "campaign_key", model, params)
        dominant: dict[str, tuple[int, str]] = {}
        for key, channel, n in session.execute(_sql(_CAMPAIGN_CHANNEL)).all():
            if n > dominant.get(key, (0, ""))[0]:
                dominant[key] = (n, channel)
        unmatched = 0.0
        for platform, key, _name, channel, cost, _clicks in session.execute(
            _sql(_SPEND), params
        ).all():
            cost = float(cost or 0)
            spend_channel = dominant.get(key, (0, channel or "Unassigned"))[1]
            channels.setdefault(spend_channel, Row(spend_channel)).spend += cost
            row = campaigns.setdefault(key, Row(key))
            row.spend += cost
            row.platforms.add(platform)
            if key not in dominant:
                unmatched += cost
        names = _campaign_names(session, campaign_names)
        for key, row in campaigns.items():
            row.channel = dominant.get(key, (0, ""))[1]
            row.name = names.get(key, key) if key else NO_CAMPAIGN
        stages = {dim: _stages(session, dim, model) for dim in ("channel", "campaign_key")}
        stages["campaign_key"] = {
            stage: {(names.get(k, k) if k else NO_CAMPAIGN): v for k, v in by.items()}
            for stage, by in stages["campaign_key"].items()
        }
        totals, stage_totals = _totals(session, params)
        period = _period(session, start, end)
        conversions = conversion_rows(session, params)

    def order(rows: dict[str, Row]) -> list[Row]:
        return sorted(
            rows.values(),
            key=lambda r: (r.name == NO_CAMPAIGN, -r.revenue.get(model, 0.0), -r.spend, r.name),
        )

    return ClosedLoopReport(
        models_, model, currency, start, end, order(channels), order(campaigns),
        stages["channel"], unmatched, pipeline_by_stage_campaign=stages["campaign_key"],
        totals=totals, stage_totals=stage_totals, period=period, journey=journey or {},
        conversions=conversions,
    )  # fmt: skip


def _campaign_names(session: Session, ruled: Collection[str]) -> dict[str, str]:
    """Join key -> the name a person reads: a rule's name, else the source's own spelling."""
    names: dict[str, str] = {}
    for query in (_SPELLINGS, _SPEND_SPELLINGS):  # touches first: the CRM holds their names
        seen: dict[str, Counter[str]] = {}
        for key, name, n in session.execute(_sql(query)).all():
            seen.setdefault(key, Counter())[name] += int(n)
        for key, counts in seen.items():
            top = max(counts.values())
            names.setdefault(key, min(name for name, n in counts.items() if n == top))
    return names | {key: key for key in ruled}


def _stages(session: Session, dim: str, model: str) -> dict[str, dict[str, float]]:
    """Open pipeline per CRM stage, split by ``dim`` under ``model`` ("28,295 in Proposal")."""
    stages: dict[str, dict[str, float]] = {}
    query = _sql(_STAGES.format(dim=dim))
    for stage, name, amount in session.execute(query, {"model": credit_model_code(model)}).all():
        stages.setdefault(stage, {})[name] = float(amount or 0)
    return stages


def _totals(session: Session, params: dict[str, Any]) -> tuple[Totals, dict[str, float]]:
    """The CRM's closed-won total of the period and its open pipeline, per stage too."""
    totals = Totals()
    won: list[float] = []
    pipeline: list[float] = []
    stages: dict[str, tuple[int, list[float]]] = {}
    foreign: dict[str, list[float]] = {}
    won_ids: set[int] = set()
    for deal_id, is_won, amount, cur, base, stage, order in session.execute(
        _sql(_DEALS), params
    ).all():
        if is_won:
            won_ids.add(deal_id)
            totals.won_deals += 1
            totals.won_without_amount += amount is None
        else:
            totals.open_deals += 1
        if amount is not None and base is None:  # a currency without a rate
            foreign.setdefault(cur or "?", []).append(float(amount))
        elif base is not None:
            (won if is_won else pipeline).append(float(base))
            if not is_won:
                stages.setdefault(stage, (order, []))[1].append(float(base))
    for m, deal_id in session.execute(_sql(_CREDITED)).all():
        if deal_id in won_ids:
            totals.credited_won_deals[m] = totals.credited_won_deals.get(m, 0) + 1
    for m, amount in session.execute(_sql(_OPEN_CREDIT)).all():
        totals.pipeline_credit[m] = float(amount or 0)
    totals.won, totals.pipeline = math.fsum(won), math.fsum(pipeline)
    totals.not_converted = [
        {"currency": c, "amount": round(math.fsum(a), 2), "deals": len(a)}
        for c, a in sorted(foreign.items())
    ]
    ordered = sorted(stages.items(), key=lambda kv: (kv[1][0], kv[0]))
    return totals, {stage: math.fsum(amounts) for stage, (_, amounts) in ordered}


def _period(
    session: Session, start: date | None, end: date | None
) -> tuple[date | None, date | None]:
    """The first and last day the store has data for, within [start, end] when given."""
    tp, sp, d = (table_of(m) for m in (models.Touchpoint, models.Spend, models.Deal))
    days: list[date] = []
    for low, high in (
        *session.execute(
            select(func.min(tp.c.occurred_at), func.max(tp.c.occurred_at)).where(
                tp.c.channel != "", tp.c.superseded.is_(False)
            )
        ).all(),
        *session.execute(select(func.min(sp.c.day), func.max(sp.c.day))).all(),
        *session.execute(select(func.min(d.c.created_at), func.max(d.c.created_at))).all(),
        *session.execute(select(func.min(d.c.close_date), func.max(d.c.close_date))).all(),
    ):
        days += [v.date() if isinstance(v, datetime) else v for v in (low, high) if v]
    if not days:
        return start, end
    first, last = max(min(days), start or date.min), min(max(days), end or date.max)
    return (first, last) if first <= last else (start, end)


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
