"""Which records a write-back reads back from the CRM: a re-sync of an unchanged portal reads
none of them.

A record's current values are read only when its desired values (and their policies) changed
since closedloop last settled them (written, or found in the CRM already: their digest is kept
in ``writeback_record``), when the CRM modified it since closedloop's last write-back (one
search per object, on HubSpot's ``lastmodifieddate`` / Salesforce's ``SystemModstamp``, from
the ``writeback`` cursor), when a value of it must be cleared, or when a killed run left a write
of it unconfirmed. Without a cursor (the first write-back) every record is read.

The cursor is the moment after the last write was confirmed (or before the search, when
nothing was written): an edit made in the CRM while the run was sending, to a record it had
already written, is seen when the record changes again.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from connector.kernel.batches import chunks
from connector.run.context import RunContext
from connector.run.touch_source import digest
from connector.store import models
from connector.store.writes import get_cursor, set_cursor, upsert

CURSOR = "writeback"


def values_digest(values: dict[str, str | None], policies: dict[str, Any]) -> int:
    """One number for what closedloop wants in a record and how it may write it."""
    policy = {name: str(policies.get(name)) for name in values}
    return digest(json.dumps([values, policy], sort_keys=True))


def known(session: Session) -> dict[tuple[str, str], int]:
    wr = models.WritebackRecord
    return {(o, r): d for o, r, d in session.exec(select(wr.crm_object, wr.record_id, wr.digest))}


def since(session: Session, obj: str) -> datetime | None:
    return get_cursor(session, CURSOR, obj)


def unchanged(
    ctx: RunContext,
    obj: str,
    digests: dict[str, int],
    settled: dict[tuple[str, str], int],
    watermark: datetime | None,
) -> set[str]:
    """Records whose digest is the one settled and that the CRM did not modify since
    ``watermark`` (one search); none without a watermark."""
    same = {crm_id for crm_id, d in digests.items() if settled.get((obj, crm_id)) == d}
    if watermark is None or not same:
        return set()
    modified: set[str] = ctx.crm.modified_since(obj, watermark)
    return same - modified


def remember(session: Session, obj: str, digests: dict[str, int]) -> None:
    """These records hold what closedloop wants: their digests are the settled ones."""
    rows = [{"crm_object": obj, "record_id": r, "digest": d} for r, d in digests.items()]
    for part in chunks(rows, 5000):
        upsert(session, models.WritebackRecord, part, ["crm_object", "record_id"])


def mark(ctx: RunContext, objects: list[str], moment: datetime) -> None:
    """The write-back is complete up to ``moment``: the next one searches from there."""
    with Session(ctx.engine) as session:
        for obj in objects:
            set_cursor(session, CURSOR, obj, moment)
        session.commit()
