"""Touchpoint records from the store: every record the CRM should hold, with what it is made of.

Two kinds of record, each under a stable key (:func:`record_key`, the CRM's external id):

- ``cl-p-…``, one per matched touch, under its person (Lead or Contact; HubSpot contact), with
  the touch's values and its position in the person's journey (First, Lead Creation, Last;
  Other when it is none of these);
- ``cl-o-…``, one per touch of each attributed deal's journey (the journeys the attribute step
  credits), under the deal and the touch's person, with its position in the deal's journey
  (First, Lead Creation, Opportunity Creation, Last) and each configured model's credit and
  revenue (0 where the model gave it none).

Sized for a million records: touches stream from the store in id order, people and journeys are
joined in memory, the deals' journeys come from :func:`connector.run.attribute.load_journeys`
(NumPy) sorted by touch id and merged into the stream. Each record carries a signature of its
inputs (cheap: no rendering) and renders to canonical JSON only when asked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlmodel import Session

from connector.config.mappings import TouchpointRecords
from connector.kernel.records import FieldSpec, TouchSchema
from connector.kernel.timeutil import iso_z, parse_datetime
from connector.run.attribute import _find, _floats, _ints, _read, load_journeys
from connector.run.context import RunContext
from connector.run.values import TRUNCATION_MARKER, render
from connector.store.models import credit_model_code

Int = npt.NDArray[np.int64]
BATCH = 20_000  # touch rows per fetch

# Matched touches in id (= rowid) order: a plain scan; people and journeys are joined in memory.
TOUCHES = """
SELECT id, source, key, occurred_at, channel, utm_source, utm_medium, utm_campaign,
       landing_page, contact_id
FROM touchpoint WHERE contact_id IS NOT NULL AND NOT superseded ORDER BY id"""
PEOPLE = """
SELECT c.id, c.crm_object, c.crm_id, cj.first_touch_id, cj.lead_touch_id, cj.last_touch_id
FROM contact c LEFT JOIN contact_journey cj ON cj.contact_id = c.id"""
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
Values = dict[str, str | None]


def record_key(kind: str, *parts: str) -> str:
    """``cl-<kind>-<32 hex>``: stable across runs, case-proof, well under Salesforce's 80."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
    return f"cl-{kind}-{digest}"


def digest(text: str) -> int:
    """A signed 64-bit hash (compact in memory and in the store) of a record's JSON or inputs."""
    raw = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


def dump(fields: Values, links: Values) -> str:
    """A record's canonical JSON: what is hashed, audited, stored and sent."""
    return _JSON.encode({"fields": fields, "links": links})


class Renderer:
    """A record's mapped fields from a touch's values: plain ``value`` mappings inline (most
    of them; this runs a million times), the others through :func:`render`."""

    def __init__(self, mappings: list[tuple[Any, FieldSpec | None]]) -> None:
        self.plain: list[tuple[str, str, int | None]] = []
        self.other: list[tuple[Any, FieldSpec | None]] = []
        for m, spec in mappings:
            picklist = spec is not None and spec.restricted and spec.picklist is not None
            if m.value and not m.value_map and m.on_overflow == "truncate" and not picklist:
                limit = m.max_length or (spec.length if spec else None)
                self.plain.append((m.field, m.value, limit))
            else:
                self.other.append((m, spec))

    def json(self, values: Values, links: Values, extra: Values | None = None) -> str:
        """The record's JSON; raises ValueError for a value its field cannot take."""
        fields: Values = {}
        for name, value, limit in self.plain:
            text = values[value]
            if text is not None and limit and len(text) > limit:
                text = text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
            fields[name] = text
        for m, spec in self.other:
            fields[m.field] = render(m, values, spec)
        if extra:
            fields.update(extra)
        return dump(fields, links)


@dataclass
class _DealTouches:
    """Every (deal, touch) of the attributed journeys, sorted by touch id; credits as written."""

    touch: list[int]
    deal: list[str]  # the deal's CRM id
    position: list[str]
    credits: list[tuple[str, list[str]]]  # (record field, its value per row)


def _deal_touches(session: Session, ctx: RunContext, cfg: TouchpointRecords) -> _DealTouches:
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
    codes = ", ".join(str(credit_model_code(m.model)) for m in cfg.models)
    c_deal, c_touch, c_model, c_fraction, c_amount = _read(
        session,
        f"SELECT deal_id, touchpoint_id, model, fraction, amount FROM credit "
        f"WHERE model IN ({codes or 'NULL'})",
        _ints, _ints, _ints, _floats, _floats,
    )  # fmt: skip
    credits: list[tuple[str, list[str]]] = []
    for m in cfg.models:
        mine = c_model == credit_model_code(m.model)
        keys = (c_deal[mine] << 32) | c_touch[mine]
        order = np.argsort(keys)
        at = _find(keys[order], pair)  # -1: the model gave the touch no credit
        found = at >= 0
        fraction, amount = np.zeros(len(pair)), np.zeros(len(pair))
        fraction[found] = c_fraction[mine][order][at[found]]
        amount[found] = c_amount[mine][order][at[found]]
        credits.append((m.credit_field, [f"{x:.4f}" for x in fraction.tolist()]))
        if m.revenue_field:
            credits.append((m.revenue_field, [f"{x:.2f}" for x in amount.tolist()]))
    flags = [flag[by_touch].tolist() for _, flag in roles]
    position = [
        ";".join(name for (name, _), on in zip(roles, bits, strict=True) if on) or "Other"
        for bits in zip(*flags, strict=True)
    ]
    crm_ids: dict[int, str] = dict(
        session.connection().exec_driver_sql("SELECT id, crm_id FROM deal").all()
    )
    return _DealTouches(
        touch=touch_ids[by_touch].tolist(),
        deal=[crm_ids[d] for d in deal_id.tolist()],
        position=position,
        credits=credits,
    )


def _iso(value: Any) -> str:
    """A store timestamp from the DB-API cursor as :func:`iso_z` prints it (SQLite: naive UTC
    text 'YYYY-MM-DD HH:MM:SS.ffffff', cut without parsing; PostgreSQL: aware datetimes)."""
    if isinstance(value, datetime):
        return iso_z(value)
    text = str(value)
    if len(text) == 26 and text[10] == " " and text[19] == ".":
        return f"{text[:10]}T{text[11:23]}Z"
    return iso_z(parse_datetime(text))


def _position(tid: int, first: int | None, lead: int | None, last: int | None) -> str:
    roles = [r for r, t in (("First", first), ("Lead Creation", lead), ("Last", last)) if t == tid]
    return ";".join(roles) or "Other"


class Source:
    """What every record is made of, read once per plan (and reused to render)."""

    def __init__(self, session: Session, ctx: RunContext, schema: TouchSchema) -> None:
        cfg: TouchpointRecords = ctx.mapping.touchpoint_records
        mapped = [(m, schema.fields.get(m.field)) for m in cfg.active_fields()]
        self.renderer = Renderer(mapped)
        self.deals = _deal_touches(session, ctx, cfg)
        self.credit_fields = [name for name, _ in self.deals.credits]
        self.people = {row[0]: row[1:] for row in session.connection().exec_driver_sql(PEOPLE)}
        self.blank = dict.fromkeys(schema.links)
        self.deal_object = ctx.crm.deal_object
        # Whatever else shapes a record's JSON: a change re-renders every record (and rewrites
        # only those whose JSON differs).
        shape = [cfg.model_dump(mode="json", include={"fields", "models"}), sorted(self.blank),
                 self.deal_object]  # fmt: skip
        shape += [[m.field, spec.type, spec.length, spec.restricted, spec.picklist]
                  for m, spec in mapped if spec]  # fmt: skip
        self.salt = str(digest(json.dumps(shape, sort_keys=True)))

    def records(
        self, session: Session
    ) -> Iterator[tuple[str, str, int, Values, Values, Values | None]]:
        """Every record: (key, occurred_at, signature of its inputs, values, links, credits);
        :meth:`Renderer.json` of the last three is what the CRM should hold."""
        deals, salt = self.deals, self.salt
        j, n = 0, len(deals.touch)
        cursor: Any = session.connection().connection.cursor()
        try:
            cursor.execute(TOUCHES)
            while rows := cursor.fetchmany(BATCH):
                for tid, source, tkey, at, channel, src, medium, campaign, page, who in rows:
                    person_object, person, first, lead, last = self.people[who]
                    if person_object not in self.blank:
                        continue  # a person object the adapter does not link (nor read)
                    when = _iso(at)
                    values: Values = {
                        "occurred_at": when, "channel": channel or None, "source": src or None,
                        "medium": medium or None, "campaign": campaign or None,
                        "landing_page": page or None,
                        "position": _position(tid, first, lead, last),
                    }  # fmt: skip
                    links = {**self.blank, person_object: person}
                    inputs = [salt, when, channel, src, medium, campaign, page,
                              values["position"] or "", person_object, person]  # fmt: skip
                    sig = digest("\x1f".join(inputs))
                    yield record_key("p", source, tkey), when, sig, values, links, None
                    while j < n and deals.touch[j] < tid:
                        j += 1
                    while j < n and deals.touch[j] == tid:
                        deal = deals.deal[j]
                        on_deal = {**values, "position": deals.position[j]}
                        credits = [column[j] for _, column in deals.credits]
                        extra: Values = dict(zip(self.credit_fields, credits, strict=True))
                        inputs[7] = deals.position[j]
                        sig = digest("\x1f".join([*inputs, deal, *credits]))
                        key = record_key("o", deal, source, tkey)
                        yield key, when, sig, on_deal, {**links, self.deal_object: deal}, extra
                        j += 1
        finally:
            cursor.close()
