"""Desired values: what each CRM record should hold, from journeys, credits and the mappings.

Values are rendered from a fixed vocabulary (templates, value maps, length limits), and compared
with the CRM's by meaning (:func:`canonical`), never by spelling. A campaign is the source's own
name (the touch's ``utm_campaign``); GA4's placeholders such as ``(direct)`` are no campaign.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from connector.config.mappings import FieldMapping
from connector.kernel.records import FieldSpec
from connector.kernel.timeutil import iso_z, parse_datetime
from connector.run.context import RunContext
from connector.run.match import PATH_SEPARATOR
from connector.run.preflight import targets
from connector.store import models

TRUNCATION_MARKER = "…"


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
            alias.campaign_key,
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
            "channel_count": str(len(set(path.split(PATH_SEPARATOR))) if path else 0),
        }
        for n, touch in enumerate(("first_touch", "lead_creation_touch", "last_touch")):
            ch, src, med, camp, page, at, key = rest[n * 7 : (n + 1) * 7]
            present = ch is not None
            values[f"{touch}.channel"] = ch if present else None
            values[f"{touch}.source"] = src or None
            values[f"{touch}.medium"] = med or None
            # no campaign key: empty, or a placeholder such as "(direct)" (campaigns.yaml)
            values[f"{touch}.campaign"] = camp if camp and key else None
            values[f"{touch}.landing_page"] = page or None
            values[f"{touch}.occurred_at"] = iso_z(at) if isinstance(at, datetime) else None
        out.append((obj, crm_id, values))
    return out


def _deal_values(session: Session, model: str) -> list[tuple[str, str, dict[str, str | None]]]:
    """(crm object, crm id, attribution summary) for every deal with credits under ``model``."""
    d, t, cr = models.Deal, models.Touchpoint, models.Credit
    rows = session.execute(
        sa_select(
            col(d.crm_object),
            col(d.crm_id),
            col(t.channel),
            col(t.utm_campaign),
            col(t.campaign_key),
            col(cr.fraction),
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
        named: dict[str, str] = {}  # joined campaign -> the first spelling in the journey
        for _, _, channel, campaign, key, fraction in touches:
            by_channel[channel] += fraction
            if key:  # a placeholder such as "(direct)" has no key: it is no campaign
                by_campaign[named.setdefault(key, campaign)] += fraction
        channels, campaigns = ranked(by_channel), ranked(by_campaign)
        out.append((obj, crm_id, {
            "primary_channel": channels[0][0],
            "primary_campaign": campaigns[0][0] if campaigns else None,
            "first_touch_channel": touches[0][2],
            "last_touch_channel": touches[-1][2],
            "touch_count": str(len(touches)),
            "channel_count": str(len(by_channel)),
            "channel_mix": " · ".join(f"{c} {share:.0%}" for c, share in channels[:4]),
        }))  # fmt: skip
    return out


def ranked(shares: dict[str, float]) -> list[tuple[str, float]]:
    """Largest share first; equal shares (to 1e-9, sums of fractions are not exact) in
    alphabetical order. The one tie rule for a deal's top channel and top campaign."""
    return sorted(shares.items(), key=lambda kv: (-round(kv[1], 9), kv[0]))


def collapse_repeats(path: str) -> str:
    """``Paid Search > Email > Email`` -> ``Paid Search > Email``."""
    return PATH_SEPARATOR.join(name for name, _ in groupby(path.split(PATH_SEPARATOR)))


def render(m: FieldMapping, values: dict[str, str | None], spec: FieldSpec | None) -> str | None:
    """The text the field should hold, or None when there is nothing to say.

    Raises ValueError for a value the field cannot take (reported per record, not sent)."""
    if m.collapse_repeats and values.get("channel_path") and "channel_path" in m.names():
        values = {**values, "channel_path": collapse_repeats(values["channel_path"] or "")}
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


def desired_values(
    ctx: RunContext, specs: dict[str, dict[str, FieldSpec]], problems: list[str]
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
                    problems.append(f"{obj} {crm_id}: {exc}")
                    continue
                if text is not None:
                    fields[m.field] = text
            if fields:
                desired[obj][crm_id] = fields
    return desired
