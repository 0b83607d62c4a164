"""Write-back: plan the CRM values from the mappings, diff them against the CRM, write real changes.

    preflight (every mapped field exists, is writable, fits)  ->  desired values per record
    -> read current values (batches)  ->  policy decides per field  ->  audit rows (pending)
    -> adapter.write in the API's batches  ->  audit rows ok / failed, per record

Nothing reaches the CRM before the preflight passed and before its audit row is committed, so
every change can be rolled back and a killed run re-runs to the same end state.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from connector import metrics, models
from connector.context import RunContext
from connector.errors import ConfigError
from connector.mappings import FieldMapping, Policy
from connector.records import FieldSpec, RecordUpdate, WriteResult
from connector.store import table_of
from connector.timeutil import iso_z, parse_datetime
from connector.yamlfile import load_yaml

log = logging.getLogger(__name__)
TRUNCATION_MARKER = "…"


@dataclass
class Change:
    crm_object: str
    record_id: str
    field: str
    old: str | None
    new: str | None


@dataclass
class WritePlan:
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    records_considered: int = 0

    def by_object(self) -> dict[str, dict[str, dict[str, str | None]]]:
        grouped: dict[str, dict[str, dict[str, str | None]]] = defaultdict(dict)
        for c in self.changes:
            grouped[c.crm_object].setdefault(c.record_id, {})[c.field] = c.new
        return grouped


# -- preflight -----------------------------------------------------------------------------
def targets(ctx: RunContext) -> list[tuple[str, str, list[FieldMapping]]]:
    """(CRM object, mapping key, active field mappings) for every object closedloop writes."""
    persons = [m for m in ctx.mapping.fields if m.policy != Policy.NEVER]
    deals: list[FieldMapping] = [m for m in ctx.mapping.deal_fields if m.policy != Policy.NEVER]
    out = [(obj, "fields", persons) for obj in ctx.crm.person_objects]
    if deals:
        out.append((ctx.crm.deal_object, "deal_fields", deals))
    return out


def preflight(ctx: RunContext) -> dict[str, dict[str, FieldSpec]]:
    """Check every mapped field on every object before any write; create missing ones where
    the CRM allows it (HubSpot properties in their own group)."""
    doc = load_yaml(ctx.loaded.resolve(ctx.loaded.config.mappings.crm))
    specs: dict[str, dict[str, FieldSpec]] = {}
    errors: list[str] = []
    for obj, key, mappings in targets(ctx):
        described = ctx.crm.describe_fields(obj)
        missing = [m for m in mappings if m.field not in described]
        if missing and ctx.mapping.create_missing_fields and not ctx.dry_run:
            ctx.crm.create_fields(
                obj,
                [FieldSpec(name=m.field, type=m.type, label=m.label or m.field) for m in missing],
                ctx.mapping.property_group,
            )
            ctx.count("fields_created", len(missing))
            described = ctx.crm.describe_fields(obj)
        positions = {m.field: i for i, m in enumerate(getattr(ctx.mapping, key))}
        for m in mappings:
            where = doc.where((key, positions[m.field], "field"))
            problem = _field_problem(obj, m, described.get(m.field))
            if problem and not (
                problem == "missing" and ctx.dry_run and ctx.mapping.create_missing_fields
            ):
                errors.append(f"{where}: {obj} has no field {m.field!r}" if problem == "missing"
                              else f"{where}: {problem}")  # fmt: skip
        specs[obj] = described
    if errors:
        raise ConfigError(
            "mapping does not fit the CRM; nothing was written:\n" + "\n".join(errors)
        )
    return specs


def _field_problem(obj: str, m: FieldMapping, spec: FieldSpec | None) -> str:
    if spec is None:
        return "missing"
    if not spec.updateable:
        return f"{obj}.{m.field} is read-only"
    if m.type == "number" and spec.type not in {"number", "string"}:
        return f"{obj}.{m.field} is {spec.type}, mapping says number"
    if spec.restricted and spec.picklist is not None and m.value_map:
        bad = sorted(set(m.value_map.values()) - set(spec.picklist))
        if bad:
            return (f"value_map sends {', '.join(map(repr, bad))}, not allowed by "
                    f"{obj}.{m.field} (allowed: {', '.join(spec.picklist)})")  # fmt: skip
    return ""


# -- desired values ------------------------------------------------------------------------
def _journey_values(session: Session) -> list[tuple[str, str, dict[str, str | None]]]:
    """(crm object, crm id, computed values) for every contact that has a journey."""
    cj, c = models.ContactJourney, models.Contact
    touches = {name: aliased(models.Touchpoint, name=name) for name in ("ft", "lt", "last")}
    ft, lt, last = touches["ft"], touches["lt"], touches["last"]
    cols = []
    for alias in (ft, lt, last):
        cols += [
            alias.channel,
            alias.utm_source,
            alias.utm_medium,
            alias.utm_campaign,
            alias.landing_page,
            alias.occurred_at,
        ]
    query = (
        select(c.crm_object, c.crm_id, cj.touch_count, cj.channel_path, *cols)
        .join(cj, col(cj.contact_id) == col(c.id))
        .outerjoin(ft, col(ft.id) == col(cj.first_touch_id))
        .outerjoin(lt, col(lt.id) == col(cj.lead_touch_id))
        .outerjoin(last, col(last.id) == col(cj.last_touch_id))
        .where(col(c.merged_into).is_(None))
        .order_by(col(c.crm_id))
    )
    out = []
    for row in session.exec(query).all():
        obj, crm_id, count, path = row[:4]
        rest: list[Any] = list(row[4:])
        values: dict[str, str | None] = {
            "touch_count": str(count),
            "channel_path": path,
            "channel_count": str(len(set(path.split(" > "))) if path else 0),
        }
        for n, touch in enumerate(("first_touch", "lead_creation_touch", "last_touch")):
            ch, src, med, camp, page, at = rest[n * 6 : (n + 1) * 6]
            present = ch is not None
            values[f"{touch}.channel"] = ch if present else None
            values[f"{touch}.source"] = src or None
            values[f"{touch}.medium"] = med or None
            values[f"{touch}.campaign"] = camp or None
            values[f"{touch}.landing_page"] = page or None
            values[f"{touch}.occurred_at"] = iso_z(at) if isinstance(at, datetime) else None
        out.append((obj, crm_id, values))
    return out


def _deal_values(session: Session, model: str) -> list[tuple[str, str, dict[str, str | None]]]:
    """(crm object, crm id, attribution summary) for every deal with credits under ``model``."""
    d, t, cr = models.Deal, models.Touchpoint, models.Credit
    rows = session.execute(
        sa_select(
            col(d.crm_object), col(d.crm_id), col(t.channel), col(t.utm_campaign), col(cr.fraction)
        )  # fmt: skip
        .join(cr, col(cr.deal_id) == col(d.id))
        .join(t, col(t.id) == col(cr.touchpoint_id))
        .where(col(cr.model) == model)
        .order_by(col(d.crm_id), col(t.occurred_at), col(t.id))
    ).all()
    out = []
    for (obj, crm_id), touches_iter in groupby(rows, key=lambda r: (r[0], r[1])):
        touches = list(touches_iter)
        by_channel: dict[str, float] = defaultdict(float)
        by_campaign: dict[str, float] = defaultdict(float)
        for _, _, channel, campaign, fraction in touches:
            by_channel[channel] += fraction
            if campaign and not campaign.startswith("("):
                by_campaign[campaign] += fraction
        ranked = sorted(by_channel.items(), key=lambda kv: (-kv[1], kv[0]))
        out.append((obj, crm_id, {
            "primary_channel": ranked[0][0],
            "primary_campaign": _top(by_campaign),
            "first_touch_channel": touches[0][2],
            "last_touch_channel": touches[-1][2],
            "touch_count": str(len(touches)),
            "channel_count": str(len(by_channel)),
            "channel_mix": " · ".join(f"{c} {share:.0%}" for c, share in ranked[:4]),
        }))  # fmt: skip
    return out


def _top(shares: dict[str, float]) -> str | None:
    return max(shares, key=lambda name: (shares[name], name)) if shares else None


def render(m: FieldMapping, values: dict[str, str | None], spec: FieldSpec | None) -> str | None:
    """The text the field should hold, or None when there is nothing to say.

    Raises ValueError for a value the field cannot take (reported per record, not sent)."""
    if m.value is not None:
        text = values.get(m.value)
        if text is None:
            return None
        text = m.value_map.get(text, text)
    else:
        names = m.names()
        if any(values.get(n) is None for n in names):
            return None
        text = m.fill({n: values[n] or "" for n in names})
    limit = m.max_length or (spec.length if spec else None)
    if limit and len(text) > limit:
        if m.on_overflow == "fail":
            raise ValueError(f"{m.field}: {len(text)} characters, the field takes {limit}")
        text = text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
    if spec and spec.restricted and spec.picklist is not None and text not in spec.picklist:
        raise ValueError(f"{m.field}: {text!r} is not an allowed value; add it to value_map")
    return text


def canonical(value: str | None, spec: FieldSpec | None) -> str | None:
    """Compare like with like: '' is empty, datetimes and numbers by value not spelling."""
    if value is None or value == "":
        return None
    kind = spec.type if spec else "string"
    try:
        if kind == "datetime":
            return iso_z(parse_datetime(value))
        if kind == "number":
            return repr(float(value))
    except ValueError:
        return value
    return value


def _last_written(session: Session) -> dict[tuple[str, str], str | None]:
    fw = models.FieldWrite
    rows = session.exec(
        select(fw.record_id, fw.field, fw.new_value).where(fw.status == "ok").order_by(col(fw.id))
    ).all()
    return {(r, f): v for r, f, v in rows}


def _desired(
    ctx: RunContext, specs: dict[str, dict[str, FieldSpec]], result: WritePlan
) -> dict[str, dict[str, dict[str, str | None]]]:
    """Per object and record: the rendered value of every mapped field that has one."""
    model = ctx.mapping.deal_model or ctx.loaded.config.sync.report_model
    with Session(ctx.engine) as session:
        computed = {"fields": _journey_values(session), "deal_fields": _deal_values(session, model)}
    desired: dict[str, dict[str, dict[str, str | None]]] = defaultdict(dict)
    for obj, key, mappings in targets(ctx):
        for row_obj, crm_id, values in computed[key]:
            if row_obj != obj:
                continue
            fields: dict[str, str | None] = {}
            for m in mappings:
                try:
                    text = render(m, values, specs.get(obj, {}).get(m.field))
                except ValueError as exc:
                    result.problems.append(f"{obj} {crm_id}: {exc}")
                    continue
                if text is not None:
                    fields[m.field] = text
            if fields:
                desired[obj][crm_id] = fields
    return desired


def plan(ctx: RunContext, specs: dict[str, dict[str, FieldSpec]]) -> WritePlan:
    """The changes to send: desired values that differ from the CRM's, as each policy allows."""
    result = WritePlan()
    desired = _desired(ctx, specs, result)
    with Session(ctx.engine) as session:
        last = _last_written(session)
    task = ctx.progress.task(
        "write-back: read current values", total=sum(map(len, desired.values()))
    )
    for obj, _, mappings in targets(ctx):
        records = desired.get(obj, {})
        if not records:
            continue
        policies = {m.field: m.policy for m in mappings}
        current = ctx.crm.read_values(obj, list(records), list(policies))
        for crm_id, fields in records.items():
            result.records_considered += 1
            now = current.get(crm_id)
            if now is None:
                result.problems.append(f"{obj} {crm_id}: not found in the CRM (deleted?)")
                continue
            for name, new in fields.items():
                spec = specs.get(obj, {}).get(name)
                old = canonical(now.get(name), spec)
                if old == canonical(new, spec):
                    continue
                mine = canonical(last.get((crm_id, name)), spec)
                if policies[name] == Policy.FILL_IF_EMPTY and old is not None and old != mine:
                    continue  # a person or another tool set it: leave it
                result.changes.append(Change(obj, crm_id, name, now.get(name), new))
        task.advance(len(records))
    task.finish()
    return result


# -- execute -------------------------------------------------------------------------------
def execute(ctx: RunContext, write_plan: WritePlan) -> dict[str, int]:
    """Record every change as pending, send it, then mark each record ok or failed."""
    assert ctx.run_id is not None
    counts = {"records_written": 0, "records_failed": 0}
    for obj, records in write_plan.by_object().items():
        changes = [c for c in write_plan.changes if c.crm_object == obj]
        with Session(ctx.engine) as session:
            session.add_all(
                [
                    models.FieldWrite(
                        run_id=ctx.run_id,
                        crm_object=obj,
                        record_id=c.record_id,
                        field=c.field,
                        old_value=c.old,
                        new_value=c.new,
                    )
                    for c in changes
                ]
            )
            session.commit()
        task = ctx.progress.task(f"write-back: {obj}", total=len(records))

        def on_batch(results: list[WriteResult], task: Any = task) -> None:
            fw = table_of(models.FieldWrite)
            stmt = (
                update(fw)
                .where(
                    fw.c.run_id == ctx.run_id,
                    fw.c.record_id == bindparam("rid"),
                    fw.c.status == "pending",
                )
                .values(status=bindparam("st"), error=bindparam("err"))
            )
            rows = [
                {"rid": r.crm_id, "st": "ok" if r.ok else "failed", "err": r.error} for r in results
            ]
            with Session(ctx.engine) as session:
                if rows:
                    session.execute(stmt, rows)
                session.commit()
            ok = sum(r.ok for r in results)
            counts["records_written"] += ok
            counts["records_failed"] += len(results) - ok
            metrics.RECORDS_WRITTEN.labels(ctx.crm_kind).inc(ok)
            metrics.RECORDS_FAILED.labels(ctx.crm_kind).inc(len(results) - ok)
            task.advance(len(results))
            ctx.checkpoint()

        updates = [RecordUpdate(crm_id, values) for crm_id, values in records.items()]
        ctx.crm.write(obj, updates, on_batch=on_batch)
        task.finish()
    return counts


def reconcile_pending(ctx: RunContext, specs: dict[str, dict[str, FieldSpec]]) -> int:
    """Settle writes a killed run recorded but never confirmed: ok if the CRM holds the value."""
    fw = models.FieldWrite
    with Session(ctx.engine) as session:
        pending = session.exec(
            select(fw).where(fw.status == "pending", fw.run_id != ctx.run_id)
        ).all()
    by_object: dict[str, list[models.FieldWrite]] = defaultdict(list)
    for w in pending:
        by_object[w.crm_object].append(w)
    settled = []
    for obj, rows in by_object.items():
        fields = sorted({w.field for w in rows})
        current = ctx.crm.read_values(obj, sorted({w.record_id for w in rows}), fields)
        for w in rows:
            spec = specs.get(obj, {}).get(w.field)
            now = current.get(w.record_id, {}).get(w.field)
            landed = canonical(now, spec) == canonical(w.new_value, spec)
            settled.append(
                {
                    "wid": w.id,
                    "st": "ok" if landed else "not_applied",
                    "err": "" if landed else f"run {w.run_id} stopped before this write was sent",
                }
            )
    if settled:
        tbl = table_of(fw)
        stmt = update(tbl).where(tbl.c.id == bindparam("wid"))
        with Session(ctx.engine) as session:
            session.execute(stmt.values(status=bindparam("st"), error=bindparam("err")), settled)
            session.commit()
    return len(settled)


def run_writeback(ctx: RunContext) -> WritePlan:
    specs = preflight(ctx)
    if not ctx.dry_run:
        ctx.count("writes_reconciled", reconcile_pending(ctx, specs))
    write_plan = plan(ctx, specs)
    ctx.count("writeback_records_considered", write_plan.records_considered)
    ctx.count("writeback_changes", len(write_plan.changes))
    ctx.count("writeback_problems", len(write_plan.problems))
    for problem in write_plan.problems[:20]:
        log.warning("not written: %s", problem)
    ctx.write_plan = write_plan
    if not ctx.dry_run and write_plan.changes:
        for key, value in execute(ctx, write_plan).items():
            ctx.count(key, value)
    return write_plan
