"""Attribute: deals' journeys from the store -> model credits -> ``credit`` rows.

A deal's journey is every touch of its contacts (a converted lead's touches included) inside the
attribution window before its milestone: the end of its close date in the CRM's time zone for
closed deals (touches during the close day count), the creation moment for open pipeline.
Deals with no amount, a negative amount or an unknown currency get no credit and are counted; a
zero amount gets credits worth zero.

Sized for millions of touches: the store returns each buyer's touches once, streamed from the
DB-API cursor into NumPy columns, and the (deal, touch) journeys are joined, windowed and ordered
in NumPy. The credits replace the ``credit`` table set-based (:mod:`connector.run.credits`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlmodel import Session

from connector.attribution import Journeys, ModelParams, credit
from connector.run.context import RunContext
from connector.run.credits import write_credits

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
Converter = Callable[[Sequence[Any]], npt.NDArray[Any]]
BATCH = 50_000  # rows per fetchmany

_USABLE = "d.amount_base IS NOT NULL AND d.amount_base >= 0"
# The people behind each deal: its contacts (a converted lead counts as its contact) and, when
# attribution is account-based, every contact of the deal's account.
_CONTACT_BUYERS = f"""
SELECT d.id AS deal_id, COALESCE(target.id, c.id) AS contact_id
FROM deal d
JOIN deal_contact dc ON dc.deal_crm_id = d.crm_id
JOIN contact c ON c.crm_id = dc.contact_crm_id
LEFT JOIN contact target ON target.crm_id = c.merged_into
WHERE {_USABLE}"""
_ACCOUNT_BUYERS = f"""
UNION
SELECT d.id, COALESCE(target.id, c.id)
FROM deal d
JOIN contact c ON c.account_id = d.account_id
LEFT JOIN contact target ON target.crm_id = c.merged_into
WHERE d.account_id IS NOT NULL AND {_USABLE}"""

# The milestone, and whether it is the (exclusive) end of a close day or an (inclusive) moment.
_MILESTONE = """CASE WHEN d.is_closed THEN COALESCE(d.close_day_end, d.closed_at, d.updated_at)
            ELSE d.created_at END"""
_DEALS = f"""
SELECT d.id, d.amount_base, d.is_won, d.created_at,
       {_MILESTONE},
       CASE WHEN d.is_closed AND d.close_day_end IS NOT NULL THEN 1 ELSE 0 END
FROM deal d WHERE {_USABLE} ORDER BY d.id"""
# The buyers are found once, into a temporary table both reads below use.
BUYERS_TABLE = "journey_buyer"
# Each (deal, buyer) once, with the buyer's lead-creation touch (-1: none).
_BUYERS = f"""
SELECT DISTINCT b.deal_id, b.contact_id, COALESCE(cj.lead_touch_id, -1)
FROM {BUYERS_TABLE} b LEFT JOIN contact_journey cj ON cj.contact_id = b.contact_id"""
# Every attributable touch of every buyer, once, read from ix_touchpoint_journey alone; only
# those between a day before the earliest of the buyer's windows and a day after the end of the
# latest (a margin for the dialects' date arithmetic: the exact windows are applied in NumPy).
_TOUCHES = f"""
SELECT t.contact_id, t.id, t.occurred_at, t.channel
FROM (SELECT b.contact_id, {{lowest}} AS lowest, {{highest}} AS highest
      FROM {BUYERS_TABLE} b JOIN deal d ON d.id = b.deal_id GROUP BY b.contact_id) w
JOIN touchpoint t ON t.contact_id = w.contact_id
WHERE t.occurred_at >= w.lowest AND t.occurred_at <= w.highest
  AND t.channel <> '' AND NOT t.superseded"""


def _touches_sql(dialect: str, window_days: int) -> str:
    """:data:`_TOUCHES` with its bounds in the dialect's date arithmetic."""
    before, after = int(window_days) + 1, 1
    first, last = f"MIN({_MILESTONE})", f"MAX({_MILESTONE})"
    if dialect == "postgresql":
        lowest = f"{first} - INTERVAL '{before} days'"
        highest = f"{last} + INTERVAL '{after} days'"
    else:  # SQLite: UTC text, compared as text ('YYYY-MM-DD HH:MM:SS...')
        lowest = f"datetime({first}, '-{before} days')"
        highest = f"datetime({last}, '+{after} days')"
    return _TOUCHES.format(lowest=lowest, highest=highest)


@dataclass(frozen=True)
class Deals:
    """The deals behind the journeys, in journey order (ascending store id)."""

    id: Int  # deal.id
    amount: Float  # deal.amount_base

    def __len__(self) -> int:
        return len(self.id)


def _ints(values: Sequence[Any]) -> Int:
    return np.array(values, dtype=np.int64)


def _floats(values: Sequence[Any]) -> Float:
    return np.array(values, dtype=np.float64)


def _bools(values: Sequence[Any]) -> npt.NDArray[np.bool_]:
    return np.array(values, dtype=np.bool_)


class _Codes:
    """A column of names as codes: a batch's new names (a set of it: the few distinct channels
    among millions of touches) are numbered in sorted order, then every value is looked up in C
    (``map``) rather than one ``setdefault`` call per value."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}

    def __call__(self, values: Sequence[str]) -> Int:
        names = self.names
        for name in sorted(set(values).difference(names)):
            names[name] = len(names)
        return np.fromiter(map(names.__getitem__, values), dtype=np.int64, count=len(values))


def _epoch_seconds(values: Sequence[Any]) -> Float:
    """Store timestamps as epoch seconds: SQLite returns UTC text, PostgreSQL aware datetimes."""
    if values and isinstance(values[0], str):
        return np.array(values, dtype="datetime64[us]").astype(np.int64) / 1e6
    return np.fromiter((v.timestamp() for v in values), dtype=np.float64, count=len(values))


def _read(session: Session, sql: str, *columns: Converter) -> list[npt.NDArray[Any]]:
    """Stream the rows of ``sql`` (no parameters) from the DB-API cursor into one array per
    column, each batch's column converted by ``columns[i]``.

    A batch's column is picked out of its rows by ``itemgetter``: transposing with
    ``zip(*rows)`` takes a call with one argument per row, several times slower."""
    parts: list[list[npt.NDArray[Any]]] = [[] for _ in columns]
    cursor: Any = session.connection().connection.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(BATCH):
            for i, (part, convert) in enumerate(zip(parts, columns, strict=True)):
                part.append(convert(list(map(itemgetter(i), rows))))
    finally:
        cursor.close()
    return [
        np.concatenate(part) if part else convert(())
        for part, convert in zip(parts, columns, strict=True)
    ]


def _find(keys: Int, wanted: Int) -> Int:
    """Index of each ``wanted`` value in the sorted ``keys``, -1 where it is absent."""
    if len(keys) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    at = np.searchsorted(keys, wanted)
    clipped = np.minimum(at, len(keys) - 1)
    return np.where(keys[clipped] == wanted, clipped, -1).astype(np.int64)


def _ranges(lo: Int, hi: Int) -> Int:
    """``concatenate([arange(a, b) for a, b in zip(lo, hi)])`` without the Python loop."""
    lengths = hi - lo
    starts = np.cumsum(lengths) - lengths
    return np.repeat(lo - starts, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)


def load_journeys(
    session: Session, window_days: int, account_based: bool = False
) -> tuple[Journeys, Int, Deals]:
    """Journeys of every deal with a usable amount; returns (journeys, touch ids, deals)."""
    buyers_sql = _CONTACT_BUYERS + (_ACCOUNT_BUYERS if account_based else "")
    deal_id, amount, won, created, end, day_end = _read(
        session, _DEALS, _ints, _floats, _bools, _epoch_seconds, _epoch_seconds, _bools
    )
    deals = Deals(deal_id, amount)
    conn = session.connection()
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {BUYERS_TABLE}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {BUYERS_TABLE} AS {buyers_sql}")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {BUYERS_TABLE}")  # no statistics otherwise
    buyer_deal, buyer, lead_touch = _read(session, _BUYERS, _ints, _ints, _ints)
    codes = _Codes()
    touches_sql = _touches_sql(conn.dialect.name, window_days)
    contact, touch_id, ts, code = _read(session, touches_sql, _ints, _ints, _epoch_seconds, codes)
    conn.exec_driver_sql(f"DROP TABLE {BUYERS_TABLE}")

    # Touches in (time, id) order: a touch's rank is its place in every journey it is part of.
    by_time = np.lexsort((touch_id, ts))
    contact, touch_id, ts, code = contact[by_time], touch_id[by_time], ts[by_time], code[by_time]
    n = max(len(ts), 1)

    # (deal, rank) of each buyer's touches: a buyer's ranks are one run of the by-contact order.
    deal_idx = _find(deal_id, buyer_deal)
    known = deal_idx >= 0
    deal_idx, buyer, lead_touch = deal_idx[known], buyer[known], lead_touch[known]
    by_contact = np.argsort(contact, kind="stable")
    sorted_contact = contact[by_contact]
    lo = np.searchsorted(sorted_contact, buyer, "left")
    hi = np.searchsorted(sorted_contact, buyer, "right")
    row_deal = np.repeat(deal_idx, hi - lo)
    row_rank = by_contact[_ranges(lo, hi)]

    # Inside the window before the milestone, then in (deal, time, id) order.
    row_ts, row_end = ts[row_rank], end[row_deal]
    by_end = np.where(day_end[row_deal], row_ts < row_end, row_ts <= row_end)
    inside = by_end & (row_ts >= row_end - float(window_days * 86_400))
    keys = np.sort(row_deal[inside] * n + row_rank[inside])
    row_deal, row_rank = keys // n, keys % n
    offsets = np.zeros(len(deals) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_deal, minlength=len(deals)), out=offsets[1:])
    journey_ts = ts[row_rank]

    # Lead touch: the latest of the buyers' lead-creation touches that is in the journey.
    lead_pos = np.full(len(deals), -1, dtype=np.int64)
    by_id = np.argsort(touch_id)
    found = _find(touch_id[by_id], lead_touch)
    lead_deal, lead_rank = deal_idx[found >= 0], by_id[found[found >= 0]]
    at = _find(keys, lead_deal * n + lead_rank)
    np.maximum.at(lead_pos, lead_deal[at >= 0], at[at >= 0])

    # Opportunity touch: the last at or before the deal's creation (a prefix of the journey).
    before = np.bincount(row_deal[journey_ts <= created[row_deal]], minlength=len(deals))
    opp_pos = np.where(before > 0, offsets[:-1] + before - 1, -1).astype(np.int64)

    # Channel codes in name order, over the channels the journeys use.
    names = np.array(list(codes.names), dtype=object)
    used = np.bincount(code[row_rank], minlength=len(names)) > 0
    channels = tuple(sorted(str(name) for name in names[used]))
    recode = np.zeros(len(names), dtype=np.int32)
    recode[used] = [channels.index(str(name)) for name in names[used]]
    journeys = Journeys(
        offsets=offsets,
        channel=recode[code[row_rank]],
        ts=journey_ts,
        end_ts=end,
        lead_pos=lead_pos,
        opp_pos=opp_pos,
        converted=won,
        channels=channels,
        direct=channels.index("Direct") if "Direct" in channels else -1,
    )
    return journeys, touch_id[row_rank], deals


def run_attribution(ctx: RunContext) -> None:
    sync = ctx.loaded.config.sync
    touch_records = ctx.mapping.touchpoint_records  # the models their records carry, too
    carried = [m.model for m in touch_records.models] if touch_records.enabled else []
    models_ = list(dict.fromkeys([*sync.models, sync.report_model, *carried]))
    task = ctx.progress.task("attribution", total=len(models_))
    with Session(ctx.engine) as session:
        knobs = sync.attribution
        journeys, touch_ids, deals = load_journeys(
            session, sync.attribution_window_days, knobs.account_based
        )
        params = ModelParams(**knobs.model_dump(exclude={"account_based"}))
        credits: dict[str, Float] = {}
        for model in models_:
            credits[model] = credit(model, journeys, params)
            task.advance()
            ctx.checkpoint()
        write_credits(session, journeys, touch_ids, deals, credits)
        session.commit()
    empty = np.diff(journeys.offsets) == 0
    ctx.count("deals_attributed", len(deals) - int(empty.sum()))
    ctx.count("deals_without_touches", int(empty.sum()))
    # the report's "Unattributed (no touch)" line holds these (open and lost ones are counted above)
    ctx.count("won_deals_without_touches", int((empty & journeys.converted).sum()))
    task.finish()
