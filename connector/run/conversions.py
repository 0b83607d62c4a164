"""Conversions: CRM outcomes sent back to the ad platforms as offline conversions.

    preflight (every conversion action, pixel and rule exists and takes uploads; the consent
    fields exist in the CRM)  ->  plan (:mod:`connector.run.conversion_plan`)  ->  ledger rows
    ``pending``, committed before anything is sent  ->  the platform's batches  ->  each row
    accepted / rejected (with the platform's reason) / retry  ->  restatements and retractions
    of accepted conversions whose deal changed (:mod:`connector.run.conversion_adjust`)

Exactly once: each conversion has a stable dedup id (Google ``orderId``, Meta ``event_id``,
LinkedIn ``eventId``). A run killed after recording but before the platform's answer landed
leaves the row pending; the next run sends it again with the same id, which the platform counts
once (and Google reports as already recorded).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import Session

from connector.config.conversions import PLATFORM_FIELDS
from connector.kernel import metrics
from connector.kernel.batches import chunks
from connector.kernel.errors import ConfigError
from connector.kernel.records import ConversionDestination, ConversionResult
from connector.kernel.timeutil import utcnow
from connector.run.context import RunContext
from connector.run.conversion_adjust import AdjustmentPlan, plan_adjustments, send_adjustments
from connector.run.conversion_plan import SKIP_REASONS, ConversionPlan, Planned, Planner
from connector.store import models
from connector.store.database import table_of

log = logging.getLogger(__name__)
RESULT_STATUSES = {"accepted", "rejected", "retry", "test"}  # what a platform may answer


@dataclass
class ConversionRun:
    """What the step planned (what ``--dry-run`` lists) and, unless a dry run, what it sent."""

    plan: ConversionPlan = field(default_factory=ConversionPlan)
    adjustments: AdjustmentPlan = field(default_factory=AdjustmentPlan)


def preflight_conversions(ctx: RunContext) -> list[ConversionDestination]:
    """One cheap read per platform and a look at the CRM's person fields, before any send:
    every destination exists and takes uploads, every consent field exists."""
    assert ctx.conversions is not None
    loaded, mapping = ctx.conversions, ctx.conversions.mapping
    errors: list[str] = []
    consent_at = [(("consent", "field"), mapping.consent)] + [
        (("conversions", i, "consent", "field"), m.consent)
        for i, m in enumerate(mapping.conversions)
    ]
    described: dict[str, Any] = {}
    for loc, consent in consent_at:
        if consent is None:
            continue
        for obj in ctx.crm.person_objects:
            described.setdefault(obj, ctx.crm.describe_fields(obj))
            if consent.field not in described[obj]:
                errors.append(
                    f"{loaded.doc.where(loc)}: the consent field {consent.field!r} "
                    f"does not exist on {ctx.crm_kind} {obj}"
                )
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, source in enumerate(ctx.conversion_sources):
        by_source[source].append(i)
    found: dict[int, ConversionDestination] = {}
    for source, indices in by_source.items():
        wanted = sorted({mapping.conversions[i].destination for i in indices})
        answer = ctx.sources[source].conversion_destinations(wanted)
        for i in indices:
            m = mapping.conversions[i]
            dest = answer.get(m.destination) or ConversionDestination(m.destination, problem="?")
            found[i] = dest
            if dest.problem:
                where = loaded.where(i, PLATFORM_FIELDS[m.platform])
                errors.append(f"{where}: {source}: {dest.problem}")
    if errors:
        raise ConfigError(
            "conversions mapping does not fit the ad platforms or the CRM; nothing was sent:\n"
            + "\n".join(errors)
        )
    return [found[i] for i in range(len(mapping.conversions))]


def plan_conversions(ctx: RunContext, now: datetime) -> ConversionRun:
    assert ctx.conversions is not None
    destinations = preflight_conversions(ctx)
    test_mode = {s: bool(ctx.sources[s].test_mode) for s in set(ctx.conversion_sources)}
    planner = Planner(ctx, now, test_mode)
    for i, mapping in enumerate(ctx.conversions.mapping.conversions):
        planner.add(i, mapping, ctx.conversion_sources[i], destinations[i])
    return ConversionRun(planner.plan, plan_adjustments(ctx, now, planner))


def run_conversions(ctx: RunContext) -> ConversionRun | None:
    if ctx.conversions is None or not ctx.conversions.mapping.conversions:
        log.info("conversions: no conversions mapping (mappings.conversions); nothing to send")
        return None
    now = utcnow()
    result = plan_conversions(ctx, now)
    ctx.conversion_run = result
    plan = result.plan
    ctx.count("conversions_to_send", len(plan.send))
    for reason, n in sorted(plan.skipped.items()):
        ctx.count(f"conversions_skipped_{reason}", n)
        log.warning(
            "conversions not sent (%s): %d, e.g. %s",
            SKIP_REASONS[reason],
            n,
            ", ".join(plan.examples[reason]),
        )
    for p in plan.rejected:
        log.warning("conversion %s (%s, %s): %s", p.dedup_id, p.mapping.name, p.source, p.problem)
    if ctx.dry_run:
        return result
    record(ctx, plan, now)
    send(ctx, plan.send)
    send_adjustments(ctx, result.adjustments)
    return result


def record(ctx: RunContext, plan: ConversionPlan, now: datetime) -> None:
    """Ledger rows before anything is sent: pending (or rejected with the local reason)."""
    assert ctx.run_id is not None
    with Session(ctx.engine) as session:
        new = [p for p in [*plan.send, *plan.rejected] if p.row_id is None]
        rows = [_row(ctx.run_id, p, now) for p in new]
        session.add_all(rows)
        session.flush()
        for p, row in zip(new, rows, strict=True):
            p.row_id = row.id
        again = [{"rid": p.row_id, "st": "pending", "reason": ""} for p in plan.send]
        again += [{"rid": rid, "st": st, "reason": why} for rid, st, why in plan.expired]
        _settle(session, ctx.run_id, now, again)
        session.commit()
    ctx.count("conversions_rejected", len(plan.rejected))
    ctx.count("conversions_unconfirmed", len(plan.expired))


def _row(run_id: int, p: Planned, now: datetime) -> models.Conversion:
    return models.Conversion(
        run_id=run_id,
        name=p.mapping.name,
        platform=p.mapping.platform,
        destination=p.mapping.destination,
        milestone=str(p.mapping.milestone),
        subject_id=p.subject_id,
        contact_crm_id=p.person.crm_id,
        dedup_id=p.dedup_id,
        occurred_at=p.occurred_at,
        value=p.value,
        currency=p.currency,
        value_base=p.value_base,
        campaign=p.campaign,
        matched_by=p.matched_by,
        status="rejected" if p.problem else "pending",
        reason=p.problem,
        updated_at=now,
    )


def _settle(session: Session, run_id: int, now: datetime, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    tbl = table_of(models.Conversion)
    values: dict[str, Any] = {
        "status": bindparam("st"),
        "reason": bindparam("reason"),
        "run_id": run_id,
        "updated_at": now,
    }
    if "sent" in rows[0]:
        values["sent_at"] = bindparam("sent")
    session.execute(update(tbl).where(tbl.c.id == bindparam("rid")).values(**values), rows)


def send(ctx: RunContext, planned: Sequence[Planned]) -> None:
    """Send each source's conversions in its API's batches; record every batch's answer."""
    by_source: dict[str, list[Planned]] = defaultdict(list)
    for p in planned:
        by_source[p.source].append(p)
    assert ctx.conversions is not None
    wanted = ctx.conversions.mapping.batch_size
    for source, items in by_source.items():
        sink = ctx.sources[source]
        size = min(wanted or sink.max_conversions, sink.max_conversions)
        task = ctx.progress.task(f"conversions: {source}", total=len(items))
        settle = _settler(ctx, items, task)
        for batch in chunks(items, size):
            sink.send_conversions([p.payload() for p in batch], on_batch=settle)
        task.finish()


def _settler(
    ctx: RunContext, items: list[Planned], task: Any
) -> Callable[[list[ConversionResult]], None]:
    """Results come in the order the conversions were given, batch after batch."""
    done = {"n": 0}

    def on_batch(results: list[ConversionResult]) -> None:
        assert ctx.run_id is not None
        now = utcnow()
        batch = items[done["n"] : done["n"] + len(results)]
        done["n"] += len(results)
        rows = []
        for p, r in zip(batch, results, strict=True):
            status = r.status if r.status in RESULT_STATUSES else "rejected"
            rows.append({"rid": p.row_id, "st": status, "reason": r.reason, "sent": now})
            ctx.count(f"conversions_{status}")
            if status == "rejected":
                log.warning("conversion %s rejected by %s: %s", p.dedup_id, p.source, r.reason)
        with Session(ctx.engine) as session:
            _settle(session, ctx.run_id, now, rows)
            session.commit()
        platform = batch[0].mapping.platform if batch else ""
        ok = sum(r["st"] in {"accepted", "test"} for r in rows)
        metrics.RECORDS_WRITTEN.labels(platform).inc(ok)
        metrics.RECORDS_FAILED.labels(platform).inc(sum(r["st"] == "rejected" for r in rows))
        task.advance(len(results))
        ctx.checkpoint()

    return on_batch
