"""Match: classify touchpoints into channels, tie them to contacts, summarise each journey.

All set-based SQL that runs the same on SQLite and PostgreSQL. A converted lead's touches go to
the contact it was converted into, and the person was created when the first of its records was
(the contact, or a lead converted into it, whichever is earlier). An identity shared by several
contacts (two records with one email) goes to the earliest-created of them, deterministically.
"""

from __future__ import annotations

from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlmodel import Session, col, delete

from connector.run.context import RunContext
from connector.run.extract import RECORD_SOURCES
from connector.store import models
from connector.store.database import table_of
from connector.store.writes import insert_rows


def classify_touchpoints(ctx: RunContext, session: Session) -> int:
    """Re-apply the rules to each distinct (source, medium, campaign, page); return changes."""
    tp = models.Touchpoint
    combos = session.execute(
        select(
            col(tp.utm_source),
            col(tp.utm_medium),
            col(tp.utm_campaign),
            col(tp.landing_page),
            col(tp.preset_channel),
            col(tp.channel),
        ).distinct()
    ).all()
    changes: list[dict[str, Any]] = []
    for source, medium, campaign, page, preset, current in combos:
        wanted = preset or ctx.classifier.classify(source, medium, campaign, page)
        if wanted != current:
            changes.append(
                {
                    "s": source,
                    "m": medium,
                    "c": campaign,
                    "p": page,
                    "pre": preset,
                    "cur": current,
                    "new": wanted,
                }
            )
    if changes:
        tbl = table_of(tp)
        stmt = (
            update(tbl)
            .where(
                tbl.c.utm_source == bindparam("s"),
                tbl.c.utm_medium == bindparam("m"),
                tbl.c.utm_campaign == bindparam("c"),
                tbl.c.landing_page == bindparam("p"),
                tbl.c.preset_channel == bindparam("pre"),
                tbl.c.channel == bindparam("cur"),
            )
            .values(channel=bindparam("new"))
        )
        session.execute(stmt, changes)
    return len(changes)


def key_campaigns(ctx: RunContext, session: Session) -> None:
    """Give touchpoints and spend the joined campaign name (campaigns.yaml, else the slug)."""
    for model, column in ((models.Touchpoint, "utm_campaign"), (models.Spend, "campaign")):
        tbl = table_of(model)
        pairs = session.execute(select(tbl.c[column], tbl.c.campaign_key).distinct()).all()
        changes = [
            {"raw": raw, "ckey": ctx.campaigns.key(raw)}
            for raw, current in pairs
            if ctx.campaigns.key(raw) != current
        ]
        if changes:
            stmt = (
                update(tbl)
                .where(tbl.c[column] == bindparam("raw"))
                .values(campaign_key=bindparam("ckey"))
            )
            session.execute(stmt, changes)


# An ad platform's click (gclid) that another touch of the person also recorded (a GA4 session,
# the record's form touch, an offline row; same channel, within 36 hours) is the same touch:
# keep the other (GA4's has the landing page) and mark the click superseded.
CLICK_SOURCES = ("google_ads",)
SAME_TOUCH_SECONDS = 36 * 3600


def supersede_duplicate_clicks(session: Session) -> int:
    tp = table_of(models.Touchpoint)
    clicks = session.execute(
        select(tp.c.id, tp.c.contact_id, tp.c.occurred_at, tp.c.channel).where(
            tp.c.source.in_(CLICK_SOURCES), tp.c.contact_id.is_not(None)
        )
    ).all()
    if not clicks:
        return 0
    contacts = {c.contact_id for c in clicks}
    others: dict[tuple[int, str], list[datetime]] = {}
    for contact_id, channel, at in session.execute(
        select(tp.c.contact_id, tp.c.channel, tp.c.occurred_at).where(
            tp.c.contact_id.in_(contacts), tp.c.source.not_in(CLICK_SOURCES)
        )
    ):
        others.setdefault((contact_id, channel), []).append(at)
    rows = [
        {
            "tid": c.id,
            "dup": any(
                abs((at - c.occurred_at).total_seconds()) <= SAME_TOUCH_SECONDS
                for at in others.get((c.contact_id, c.channel), ())
            ),
        }
        for c in clicks
    ]
    session.execute(
        update(tp).where(tp.c.id == bindparam("tid")).values(superseded=bindparam("dup")), rows
    )
    return sum(r["dup"] for r in rows)


_MATCH = text("""
UPDATE touchpoint SET contact_id = (
    SELECT COALESCE(target.id, c.id)
    FROM identity i
    JOIN contact c ON c.id = i.contact_id
    LEFT JOIN contact target ON target.crm_id = c.merged_into
    WHERE i.kind = touchpoint.identity_kind AND i.value = touchpoint.identity_value
    ORDER BY c.created_at, c.id
    LIMIT 1
)
""")


def match_touchpoints(session: Session) -> None:
    session.execute(_MATCH)


PATH_SEPARATOR = " > "


def person_created(session: Session) -> dict[int, datetime]:
    """Per contact id: the earliest creation among the contact and the leads converted into it."""
    contact = models.Contact
    created: dict[int, datetime] = {
        cid: at for cid, at in session.execute(select(col(contact.id), col(contact.created_at)))
    }
    lead, target = table_of(contact).alias("lead"), table_of(contact).alias("target")
    converted = session.execute(
        select(target.c.id, lead.c.created_at).join(target, target.c.crm_id == lead.c.merged_into)
    )
    for cid, at in converted:
        created[cid] = min(created[cid], at)
    return created


def date_record_touches(session: Session, created: dict[int, datetime]) -> int:
    """Touches a CRM record carries itself (form-captured UTMs, a Meta click id) happened when
    the person was created: for a contact converted from a lead, at the lead's creation.
    Returns how many were moved."""
    tp = table_of(models.Touchpoint)
    moved = [
        {"tid": tid, "at": created[cid]}
        for tid, cid, at in session.execute(
            select(tp.c.id, tp.c.contact_id, tp.c.occurred_at).where(
                tp.c.source.in_(RECORD_SOURCES), tp.c.contact_id.is_not(None)
            )
        )
        if created[cid] != at
    ]
    if moved:
        stmt = update(tp).where(tp.c.id == bindparam("tid")).values(occurred_at=bindparam("at"))
        session.execute(stmt, moved)
    return len(moved)


def build_journeys(session: Session, created: dict[int, datetime]) -> int:
    """Recompute ContactJourney: first, lead-creation (last at or before the person's creation)
    and last touch, how many touches, and every touch's channel in time order."""
    tp = models.Touchpoint
    rows = session.execute(
        select(col(tp.contact_id), col(tp.id), col(tp.occurred_at), col(tp.channel))
        .where(col(tp.contact_id).is_not(None), col(tp.superseded).is_(False))
        .order_by(col(tp.contact_id), col(tp.occurred_at), col(tp.id))
    ).all()
    journeys = []
    for contact_id, touches_iter in groupby(rows, key=lambda r: r[0]):
        touches = list(touches_iter)
        created_at = created[contact_id]
        before = [t for t in touches if t[2] <= created_at]
        journeys.append(
            {
                "contact_id": contact_id,
                "first_touch_id": touches[0][1],
                "lead_touch_id": before[-1][1] if before else None,
                "last_touch_id": touches[-1][1],
                "touch_count": len(touches),
                "channel_path": PATH_SEPARATOR.join(t[3] for t in touches),
                "created_at": created_at,
            }
        )
    session.execute(delete(models.ContactJourney))
    for start in range(0, len(journeys), 5000):
        insert_rows(session, models.ContactJourney, journeys[start : start + 5000])
    return len(journeys)


def run_match(ctx: RunContext) -> None:
    task = ctx.progress.task("match: channels, identities, journeys", total=3)
    with Session(ctx.engine) as session:
        ctx.count("channel_groups_changed", classify_touchpoints(ctx, session))
        task.advance()
        key_campaigns(ctx, session)
        match_touchpoints(session)
        # record touches dated first: a click is compared with when they happened
        created = person_created(session)
        date_record_touches(session, created)
        ctx.count("clicks_seen_by_ga4", supersede_duplicate_clicks(session))
        task.advance()
        ctx.count("journeys", build_journeys(session, created))
        task.advance()
        session.commit()
    task.finish()
