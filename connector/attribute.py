"""Attribute: deals' journeys from the store -> model credits -> ``credit`` rows.

A deal's journey is every touch of its contacts (a converted lead's touches included) inside the
attribution window before its milestone: the close date for closed deals, the creation date for
open pipeline. Deals with no amount, a negative amount or an unknown currency get no credit and
are counted; a zero amount gets credits worth zero.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import Integer, String, TextClause, TextualSelect, text
from sqlmodel import Session, col, delete, select

from connector import models
from connector.attribution import Journeys, ModelParams, credit
from connector.context import RunContext
from connector.store import insert_rows

# The people behind each deal: its contacts (a converted lead counts as its contact) and, when
# attribution is account-based, every contact of the deal's account.
_CONTACT_BUYERS = """
SELECT d.id AS deal_id, COALESCE(target.id, c.id) AS contact_id
FROM deal d
JOIN deal_contact dc ON dc.deal_crm_id = d.crm_id
JOIN contact c ON c.crm_id = dc.contact_crm_id
LEFT JOIN contact target ON target.crm_id = c.merged_into"""
_ACCOUNT_BUYERS = """
UNION
SELECT d.id, COALESCE(target.id, c.id)
FROM deal d
JOIN contact c ON c.account_id = d.account_id
LEFT JOIN contact target ON target.crm_id = c.merged_into
WHERE d.account_id IS NOT NULL"""

_TOUCHES = """
WITH buyers AS ({buyers})
SELECT DISTINCT d.id AS deal_id, t.id AS touch_id, t.occurred_at, t.channel
FROM buyers b
JOIN deal d ON d.id = b.deal_id
JOIN touchpoint t ON t.contact_id = b.contact_id
WHERE d.amount_base IS NOT NULL AND d.amount_base >= 0
  AND t.occurred_at <= CASE WHEN d.is_closed THEN COALESCE(d.closed_at, d.updated_at)
                           ELSE d.created_at END
  AND t.channel <> '' AND NOT t.superseded
ORDER BY d.id, t.occurred_at, t.id"""

_LEAD_TOUCHES = """
WITH buyers AS ({buyers})
SELECT DISTINCT b.deal_id, cj.lead_touch_id
FROM buyers b
JOIN contact_journey cj ON cj.contact_id = b.contact_id
WHERE cj.lead_touch_id IS NOT NULL"""


def _queries(account_based: bool) -> tuple[TextualSelect, TextClause]:
    buyers = _CONTACT_BUYERS + (_ACCOUNT_BUYERS if account_based else "")
    touches = text(_TOUCHES.format(buyers=buyers)).columns(
        deal_id=Integer(), touch_id=Integer(), occurred_at=models.UtcDateTime(), channel=String()
    )
    return touches, text(_LEAD_TOUCHES.format(buyers=buyers))


def _epoch(values: Any) -> float:
    return float(values.timestamp())


def load_journeys(
    session: Session, window_days: int, account_based: bool = False
) -> tuple[Journeys, np.ndarray[Any, Any], list[Any]]:
    """Journeys of every deal with a usable amount; returns (journeys, touch ids, deals)."""
    touches_query, lead_query = _queries(account_based)
    amount = col(models.Deal.amount_base)
    deals = session.exec(
        select(models.Deal).where(amount.is_not(None), amount >= 0).order_by(col(models.Deal.id))
    ).all()
    index = {d.id: i for i, d in enumerate(deals)}
    rows = session.execute(touches_query).all()
    tz_rows = [(index[r[0]], r[1], r[2], r[3]) for r in rows]
    end = np.array(
        [
            _epoch(d.closed_at or d.updated_at) if d.is_closed else _epoch(d.created_at)
            for d in deals
        ],
        dtype=np.float64,
    )
    deal_idx = np.array([r[0] for r in tz_rows], dtype=np.int64)
    touch_ids = np.array([r[1] for r in tz_rows], dtype=np.int64)
    ts = np.array([_epoch(r[2]) for r in tz_rows], dtype=np.float64)
    names, codes = np.unique(np.array([r[3] for r in tz_rows], dtype=object), return_inverse=True)
    in_window = ts >= end[deal_idx] - timedelta(days=window_days).total_seconds()
    deal_idx, touch_ids, ts, codes = (
        deal_idx[in_window],
        touch_ids[in_window],
        ts[in_window],
        codes[in_window],
    )
    offsets = np.zeros(len(deals) + 1, dtype=np.int64)
    np.cumsum(np.bincount(deal_idx, minlength=len(deals)), out=offsets[1:])
    lead_pos = np.full(len(deals), -1, dtype=np.int64)
    position = {
        (int(d), int(t)): i for i, (d, t) in enumerate(zip(deal_idx, touch_ids, strict=True))
    }
    for deal_id, lead_touch in session.execute(lead_query).all():
        if deal_id not in index:
            continue
        pos = position.get((index[deal_id], int(lead_touch)))
        if pos is not None:
            lead_pos[index[deal_id]] = max(lead_pos[index[deal_id]], pos)
    created = np.array([_epoch(d.created_at) for d in deals], dtype=np.float64)
    before_opp = np.where(ts <= created[deal_idx])[0]
    opp_pos = np.full(len(deals), -1, dtype=np.int64)
    np.maximum.at(opp_pos, deal_idx[before_opp], before_opp)
    channels = tuple(str(n) for n in names)
    journeys = Journeys(
        offsets=offsets,
        channel=codes.astype(np.int32),
        ts=ts,
        end_ts=end,
        lead_pos=lead_pos,
        opp_pos=opp_pos,
        converted=np.array([bool(d.is_won) for d in deals]),
        channels=channels,
        direct=channels.index("Direct") if "Direct" in channels else -1,
    )
    return journeys, touch_ids, list(deals)


def run_attribution(ctx: RunContext) -> None:
    sync = ctx.loaded.config.sync
    models_ = list(dict.fromkeys([*sync.models, sync.report_model]))
    task = ctx.progress.task("attribution", total=len(models_))
    with Session(ctx.engine) as session:
        knobs = sync.attribution
        journeys, touch_ids, deals = load_journeys(
            session, sync.attribution_window_days, knobs.account_based
        )
        params = ModelParams(**knobs.model_dump(exclude={"account_based"}))
        amounts = np.array([d.amount_base for d in deals], dtype=np.float64)
        deal_ids = np.array([d.id for d in deals], dtype=np.int64)
        per_touch_deal = np.repeat(np.arange(len(deals)), np.diff(journeys.offsets))
        session.execute(delete(models.Credit))
        for model in models_:
            fractions = credit(model, journeys, params)
            mask = fractions > 0
            idx = np.nonzero(mask)[0]
            rows = [
                {
                    "deal_id": int(deal_ids[per_touch_deal[i]]),
                    "touchpoint_id": int(touch_ids[i]),
                    "model": model,
                    "fraction": float(fractions[i]),
                    "amount": float(fractions[i] * amounts[per_touch_deal[i]]),
                }
                for i in idx
            ]
            for start in range(0, len(rows), 10000):
                insert_rows(session, models.Credit, rows[start : start + 10000])
            task.advance()
            ctx.checkpoint()
        session.commit()
    empty = int(np.sum(np.diff(journeys.offsets) == 0))
    ctx.count("deals_attributed", len(deals) - empty)
    ctx.count("deals_without_touches", empty)
    task.finish()
