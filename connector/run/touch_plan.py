"""Touchpoint records: what each one should hold, diffed against what closedloop last wrote.

Two kinds of record, each under a stable key (:func:`record_key`, the CRM's external id):

- ``cl-p-…``, one per matched touch, under its person (Lead or Contact; HubSpot contact), with
  the touch's values and its position in the person's journey (First, Lead Creation, Last;
  Other when it is none of these);
- ``cl-o-…``, one per touch of each attributed deal's journey (the journeys the attribute step
  credits), under the deal and the touch's person, with its position in the deal's journey
  (First, Lead Creation, Opportunity Creation, Last) and each configured model's credit and
  revenue (0 where the model gave it none).

Sized for a million records: touches stream from the store in id order; the deals' journeys come
from :func:`connector.run.attribute.load_journeys` (NumPy) sorted by touch id and merged into the
stream. Each record is rendered once to canonical JSON and hashed; the diff compares that hash
with the one stored when closedloop last wrote the record (``touch_record``), so nothing is read
from the CRM and a sync with nothing changed sends nothing. Only changed records keep their JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlmodel import Session

from connector.config.mappings import TouchpointRecords
from connector.kernel.records import TouchSchema
from connector.kernel.timeutil import iso_z, parse_datetime, utcnow
from connector.run.attribute import _Codes, _find, _floats, _ints, _read, load_journeys
from connector.run.context import RunContext
from connector.run.values import render

Int = npt.NDArray[np.int64]
BATCH = 20_000  # touch rows per fetch

TOUCHES = """
SELECT t.id, t.source, t.key, t.occurred_at, t.channel, t.utm_source, t.utm_medium,
       t.utm_campaign, t.landing_page, c.crm_object, c.crm_id,
       cj.first_touch_id, cj.lead_touch_id, cj.last_touch_id
FROM touchpoint t
JOIN contact c ON c.id = t.contact_id
LEFT JOIN contact_journey cj ON cj.contact_id = t.contact_id
WHERE NOT t.superseded
ORDER BY t.id"""


def record_key(kind: str, *parts: str) -> str:
    """``cl-<kind>-<32 hex>``: stable across runs, case-proof, well under Salesforce's 80."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
    return f"cl-{kind}-{digest}"


def digest(text: str) -> str:
    """The hash the diff compares: of the record's canonical JSON."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def dump(fields: dict[str, str | None], links: dict[str, str | None]) -> str:
    """A record's canonical JSON: what is hashed, audited, stored and sent."""
    record = {"fields": fields, "links": links}
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class TouchChange:
    """One record to create, update or delete. ``new`` is its JSON (None: delete); ``old`` and
    ``crm_id`` are filled from the store when sent, unless given (a rollback's)."""

    key: str
    action: str  # create | update | delete
    new: str | None
    old: str | None = None
    crm_id: str | None = None


@dataclass
class TouchPlan:
    object: str
    changes: list[TouchChange] = field(default_factory=list)
    unchanged: int = 0
    too_old: int = 0  # touches before lookback_days that were never written
    problems: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(c.action == action for c in self.changes)


@dataclass
class _DealTouches:
    """Every (deal, touch) of the attributed journeys, sorted by touch id."""

    touch: Int
    deal: list[str]  # the deal's CRM id
    position: list[str]
    credits: dict[str, tuple[list[float], list[float]]]  # model -> (fractions, amounts)


def _deal_touches(session: Session, ctx: RunContext, models: Sequence[str]) -> _DealTouches:
    sync = ctx.loaded.config.sync
    journeys, touch_ids, deals = load_journeys(
        session, sync.attribution_window_days, sync.attribution.account_based
    )
    row = np.arange(journeys.n_touches, dtype=np.int64)
    of = journeys.journey_of_touch
    roles = [
        ("First", row == journeys.offsets[:-1][of]),
        ("Lead Creation", row == journeys.lead_pos[of]),
        ("Opportunity Creation", row == journeys.opp_pos[of]),
        ("Last", row == journeys.offsets[1:][of] - 1),
    ]
    by_touch = np.argsort(touch_ids, kind="stable")
    deal_id = deals.id[of][by_touch]
    pair = (deal_id << 32) | touch_ids[by_touch]  # store ids stay far below 2**31
    codes = _Codes()
    names = ", ".join(f"'{m}'" for m in models)  # validated model names
    c_deal, c_touch, c_model, c_fraction, c_amount = _read(
        session,
        f"SELECT deal_id, touchpoint_id, model, fraction, amount FROM credit "
        f"WHERE model IN ({names or 'NULL'})",
        _ints, _ints, codes, _floats, _floats,
    )  # fmt: skip
    credits: dict[str, tuple[list[float], list[float]]] = {}
    for model in models:
        mine = c_model == codes.names.get(model, -1)
        keys = (c_deal[mine] << 32) | c_touch[mine]
        order = np.argsort(keys)
        at = _find(keys[order], pair)  # -1: the model gave the touch no credit
        found = at >= 0
        fraction, amount = np.zeros(len(pair)), np.zeros(len(pair))
        fraction[found] = c_fraction[mine][order][at[found]]
        amount[found] = c_amount[mine][order][at[found]]
        credits[model] = (fraction.tolist(), amount.tolist())
    flags = [flag[by_touch].tolist() for _, flag in roles]
    position = [
        ";".join(name for (name, _), on in zip(roles, bits, strict=True) if on) or "Other"
        for bits in zip(*flags, strict=True)
    ]
    crm_ids: dict[int, str] = dict(
        session.connection().exec_driver_sql("SELECT id, crm_id FROM deal").all()
    )
    return _DealTouches(
        touch=touch_ids[by_touch],
        deal=[crm_ids[d] for d in deal_id.tolist()],
        position=position,
        credits=credits,
    )


def _iso(value: Any) -> str:
    """A store timestamp from the DB-API cursor (SQLite: naive UTC text; PostgreSQL: aware)."""
    if isinstance(value, datetime):
        return iso_z(value)
    return iso_z(parse_datetime(str(value)))


def desired(
    session: Session, ctx: RunContext, schema: TouchSchema, problems: list[str]
) -> Iterator[tuple[str, str, str | None]]:
    """Every record the CRM should hold: (key, occurred_at, canonical JSON); JSON None when the
    record cannot be rendered (the reason is in ``problems``; its last write is left alone)."""
    cfg: TouchpointRecords = ctx.mapping.touchpoint_records
    mappings = [(m, schema.fields.get(m.field)) for m in cfg.active_fields()]
    models = [m.model for m in cfg.models]
    deals = _deal_touches(session, ctx, models)
    blank = dict.fromkeys(schema.links)
    deal_object = ctx.crm.deal_object
    j, n = 0, len(deals.touch)
    cursor: Any = session.connection().connection.cursor()
    try:
        cursor.execute(TOUCHES)
        while rows := cursor.fetchmany(BATCH):
            for (tid, source, tkey, at, channel, src, medium, campaign, page, person_object,
                 person, first, lead, last) in rows:  # fmt: skip
                if person_object not in blank:
                    continue  # a person object the adapter does not link (not read either)
                values: dict[str, str | None] = {
                    "occurred_at": _iso(at),
                    "channel": channel or None,
                    "source": src or None,
                    "medium": medium or None,
                    "campaign": campaign or None,
                    "landing_page": page or None,
                }
                roles = [r for r, t in (("First", first), ("Lead Creation", lead),
                                        ("Last", last)) if t == tid]  # fmt: skip
                values["position"] = ";".join(roles) or "Other"
                links = {**blank, person_object: person}
                key = record_key("p", source, tkey)
                yield key, values["occurred_at"] or "", _render(key, values, links, mappings,
                                                                problems)  # fmt: skip
                while j < n and deals.touch[j] < tid:
                    j += 1
                while j < n and deals.touch[j] == tid:
                    deal = deals.deal[j]
                    values["position"] = deals.position[j]
                    extra: dict[str, str | None] = {}
                    for m in cfg.models:
                        fractions, amounts = deals.credits[m.model]
                        extra[m.credit_field] = f"{fractions[j]:.4f}"
                        if m.revenue_field:
                            extra[m.revenue_field] = f"{amounts[j]:.2f}"
                    key = record_key("o", deal, source, tkey)
                    text = _render(key, values, {**links, deal_object: deal}, mappings, problems,
                                   extra)  # fmt: skip
                    yield key, values["occurred_at"] or "", text
                    j += 1
    finally:
        cursor.close()


def _render(
    key: str,
    values: dict[str, str | None],
    links: dict[str, str | None],
    mappings: list[Any],
    problems: list[str],
    extra: dict[str, str | None] | None = None,
) -> str | None:
    fields: dict[str, str | None] = {}
    try:
        for m, spec in mappings:
            fields[m.field] = render(m, values, spec)
    except ValueError as exc:
        problems.append(f"touchpoint record {key}: {exc}")
        return None
    if extra:
        fields.update(extra)
    return dump(fields, links)


def plan(ctx: RunContext, schema: TouchSchema, now: datetime | None = None) -> TouchPlan:
    """The creates, updates and deletes that make the CRM's touchpoint records what the store
    says, compared with what closedloop last wrote (never read from the CRM)."""
    cfg = ctx.mapping.touchpoint_records
    cutoff = iso_z((now or utcnow()) - timedelta(days=cfg.lookback_days))
    result = TouchPlan(schema.object)
    task = ctx.progress.task("touchpoint records: plan")
    with Session(ctx.engine) as session:
        cursor: Any = session.connection().connection.cursor()
        try:
            cursor.execute("SELECT key, values_hash FROM touch_record")
            written: dict[str, str] = dict(cursor.fetchall())
        finally:
            cursor.close()
        for n, (key, at, text) in enumerate(desired(session, ctx, schema, result.problems)):
            before = written.pop(key, None)
            if text is None:
                continue  # not renderable: reported, its last write stays
            if before is None:
                if at < cutoff:
                    result.too_old += 1
                else:
                    result.changes.append(TouchChange(key, "create", text))
            elif before == digest(text):
                result.unchanged += 1
            else:
                result.changes.append(TouchChange(key, "update", text))
            if n % BATCH == BATCH - 1:
                task.advance(BATCH)
    result.changes.extend(TouchChange(key, "delete", None) for key in written)
    task.finish()
    return result
