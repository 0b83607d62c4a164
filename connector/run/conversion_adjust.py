"""Adjustments: an accepted conversion whose deal changed since is restated or retracted.

A won deal whose amount changed gets a restatement (its new value); one that was lost or
reopened, a retraction. Only platforms that support it (``adjustable``: Google Ads) are sent
adjustments; changes on the others are counted (``conversions_not_adjustable``). Each
adjustment is recorded ``pending`` with its ``adjusted_at`` before it is sent, so a re-send
after a crash is the same adjustment, which the platform recognises.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlmodel import Session

from connector.config.conversions import ConversionMapping, Milestone
from connector.kernel.records import ConversionAdjustment, ConversionResult
from connector.kernel.timeutil import utcnow
from connector.run.conversion_people import select_in
from connector.store import models
from connector.store.database import table_of

log = logging.getLogger(__name__)
ADJUSTABLE_FOR = timedelta(days=90)  # no platform adjusts older conversions (Google: 54 days)


@dataclass
class PlannedAdjustment:
    conversion_id: int
    source: str
    dedup_id: str
    destination: str
    kind: str  # restatement | retraction
    old_value: float | None
    new_value: float | None
    adjusted_at: datetime
    currency: str | None
    rate: float
    row_id: int | None = None  # an adjustment recorded before, to re-send

    def payload(self) -> ConversionAdjustment:
        value = None if self.kind == "retraction" else self.new_value
        return ConversionAdjustment(
            self.dedup_id, self.destination, self.adjusted_at, value, self.currency
        )


@dataclass
class AdjustmentPlan:
    send: list[PlannedAdjustment] = field(default_factory=list)
    not_adjustable: int = 0


def plan_adjustments(ctx: Any, now: datetime, planner: Any) -> AdjustmentPlan:
    """The adjustments due: re-sends of unconfirmed ones, and new ones for changed deals."""
    plan = AdjustmentPlan()
    for source, mapping in _value_entries(ctx):
        adjustable = bool(ctx.sources[source].adjustable)
        with Session(ctx.engine) as session:
            rows = _accepted(session, mapping, now)
            deals = _deals(session, [r["subject_id"] for r in rows])
            history = _history(session, [r["id"] for r in rows])
        for row in rows:
            deal = deals.get(row["subject_id"])
            wanted = _wanted(planner, mapping, row, deal)
            if wanted is None:
                continue
            if not adjustable:
                plan.not_adjustable += 1
                continue
            kind, value = wanted
            last = history.get(row["id"])
            if last and last["status"] in {"pending", "retry"}:
                plan.send.append(
                    _planned(
                        source,
                        row,
                        last["kind"],
                        last["new_value"],
                        last["adjusted_at"],
                        planner,
                        last["id"],
                    )
                )
            elif (
                last
                and last["status"] == "rejected"
                and (last["kind"], last["new_value"]) == (kind, value)
            ):
                continue  # the platform refused this very change already
            else:
                plan.send.append(_planned(source, row, kind, value, now, planner))
    return plan


def _value_entries(ctx: Any) -> list[tuple[str, ConversionMapping]]:
    """Entries whose value is the deal's amount (or that a lost deal undoes): adjustable."""
    mapping = ctx.conversions.mapping
    return [
        (source, m)
        for source, m in zip(ctx.conversion_sources, mapping.conversions, strict=True)
        if m.per_deal and (m.value == "amount" or m.milestone == Milestone.CLOSED_WON)
    ]


def _accepted(session: Session, mapping: ConversionMapping, now: datetime) -> list[dict[str, Any]]:
    """Accepted conversions recent enough to adjust (Google: up to 54 days after them)."""
    conv = table_of(models.Conversion)
    stmt = select(conv).where(
        conv.c.platform == mapping.platform,
        conv.c.destination == mapping.destination,
        conv.c.milestone == str(mapping.milestone),
        conv.c.status == "accepted",
        conv.c.occurred_at >= now - ADJUSTABLE_FOR,
    )
    return [r._asdict() for r in session.execute(stmt).all()]


def _deals(session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    deal = table_of(models.Deal)
    return {r.crm_id: r._asdict() for r in select_in(session, select(deal), deal.c.crm_id, ids)}


def _history(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each conversion's latest adjustment."""
    adj = table_of(models.ConversionAdjustment)
    latest: dict[int, dict[str, Any]] = {}
    for r in sorted(select_in(session, select(adj), adj.c.conversion_id, ids), key=lambda r: r.id):
        latest[r.conversion_id] = r._asdict()
    return latest


def _wanted(
    planner: Any, mapping: ConversionMapping, row: dict[str, Any], deal: dict[str, Any] | None
) -> tuple[str, float | None] | None:
    """(kind, new value) when the deal no longer matches what the platform holds."""
    if deal is None:
        return None  # not in the store (deleted in the CRM?): leave the conversion alone
    if mapping.milestone == Milestone.CLOSED_WON and not deal["is_won"]:
        return ("retraction", None)
    if mapping.value != "amount":
        return None
    value = planner._value(mapping, deal)
    if not isinstance(value, float) or row["value"] is None or abs(value - row["value"]) < 0.005:
        return None
    return ("restatement", value)


def _planned(
    source: str,
    row: dict[str, Any],
    kind: str,
    value: float | None,
    at: datetime,
    planner: Any,
    row_id: int | None = None,
) -> PlannedAdjustment:
    return PlannedAdjustment(
        row["id"],
        source,
        row["dedup_id"],
        row["destination"],
        kind,
        row["value"],
        value,
        at,
        row["currency"],
        planner.rate,
        row_id,
    )


def send_adjustments(ctx: Any, plan: AdjustmentPlan) -> None:
    ctx.count("conversions_not_adjustable", plan.not_adjustable)
    if not plan.send:
        return
    with Session(ctx.engine) as session:
        new = [a for a in plan.send if a.row_id is None]
        rows = [
            models.ConversionAdjustment(
                run_id=ctx.run_id,
                conversion_id=a.conversion_id,
                kind=a.kind,
                old_value=a.old_value,
                new_value=a.new_value,
                adjusted_at=a.adjusted_at,
            )
            for a in new
        ]
        session.add_all(rows)
        session.flush()
        for a, row in zip(new, rows, strict=True):
            a.row_id = row.id
        session.commit()
    by_source: dict[str, list[PlannedAdjustment]] = defaultdict(list)
    for a in plan.send:
        by_source[a.source].append(a)
    for source, items in by_source.items():
        done = {"n": 0}

        def on_batch(results: list[ConversionResult], items: Any = items, done: Any = done) -> None:
            batch = items[done["n"] : done["n"] + len(results)]
            done["n"] += len(results)
            _settle(ctx, batch, results)

        ctx.sources[source].adjust_conversions([a.payload() for a in items], on_batch=on_batch)


def _settle(ctx: Any, batch: list[PlannedAdjustment], results: list[ConversionResult]) -> None:
    adj, conv = table_of(models.ConversionAdjustment), table_of(models.Conversion)
    now = utcnow()
    with Session(ctx.engine) as session:
        for a, r in zip(batch, results, strict=True):
            status = r.status if r.status in {"accepted", "retry"} else "rejected"
            session.execute(
                update(adj)
                .where(adj.c.id == a.row_id)
                .values(status=status, reason=r.reason, run_id=ctx.run_id)
            )
            ctx.count(f"adjustments_{status}")
            if status == "rejected":
                log.warning("adjustment of conversion %s rejected: %s", a.dedup_id, r.reason)
            if status != "accepted":
                continue
            changes: dict[str, Any] = {"updated_at": now, "run_id": ctx.run_id}
            if a.kind == "retraction":
                changes.update(status="retracted", reason="retracted: the deal is no longer won")
            else:
                base = None if a.new_value is None else round(a.new_value * a.rate, 2)
                changes.update(value=a.new_value, value_base=base)
            session.execute(
                update(conv).where(conv.c.id == bindparam("cid")).values(**changes),
                [{"cid": a.conversion_id}],
            )
        session.commit()
    ctx.checkpoint()
