"""Erasure requests: remove a person's identities, touchpoints and credits from the store.

The CRM keeps its own record (erase it there too); closedloop forgets what it derived, and the
person's conversions sent or waiting to be sent to the ad platforms; the touchpoint records it
wrote under the person go with it (:func:`.touch_undo.forget_records`). The email's hash and
the CRM ids go to the ``forgotten`` list, so nothing about the person is sent to an ad platform
again, even if the CRM still holds them. Audit rows of CRM writes stay: they hold field values
(channels, campaigns), not the person's identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connector.kernel.identity import email_hash
from connector.kernel.records import IdentityKind
from connector.kernel.timeutil import utcnow
from connector.store import models
from connector.store.database import table_of
from connector.store.writes import upsert


@dataclass
class Forgotten:
    contacts: int = 0
    identities: int = 0
    touchpoints: int = 0
    credits: int = 0
    conversions: int = 0


def forget_email(engine: Engine, email: str, dry_run: bool = False) -> Forgotten:
    """Delete everything derived from the person with ``email`` (any spelling of it); a dry
    run counts what would go and keeps it."""
    identity, touch = table_of(models.Identity), table_of(models.Touchpoint)
    credit, journey = table_of(models.Credit), table_of(models.ContactJourney)
    contact = table_of(models.Contact)
    hashed = email_hash(email)
    with Session(engine) as session:
        run = session.connection().execute
        contact_ids = set(
            run(
                select(identity.c.contact_id).where(
                    identity.c.kind == str(IdentityKind.EMAIL_SHA256), identity.c.value == hashed
                )
            ).scalars()
        )
        keys = {
            (kind, value)
            for kind, value in run(
                select(identity.c.kind, identity.c.value).where(
                    identity.c.contact_id.in_(contact_ids)
                )
            )
        }
        keys.add((str(IdentityKind.EMAIL_SHA256), hashed))  # offline rows not yet matched
        same_person = or_(
            touch.c.contact_id.in_(contact_ids),
            *[(touch.c.identity_kind == k) & (touch.c.identity_value == v) for k, v in keys],
        )
        touch_ids = set(run(select(touch.c.id).where(same_person)).scalars())
        result = Forgotten(
            contacts=len(contact_ids),
            credits=run(delete(credit).where(credit.c.touchpoint_id.in_(touch_ids))).rowcount,
            touchpoints=run(delete(touch).where(touch.c.id.in_(touch_ids))).rowcount,
            identities=run(delete(identity).where(identity.c.contact_id.in_(contact_ids))).rowcount,
        )
        crm_ids = set(run(select(contact.c.crm_id).where(contact.c.id.in_(contact_ids))).scalars())
        result.conversions = _forget_conversions(session, crm_ids)
        consent = table_of(models.ContactConsent)
        run(delete(consent).where(consent.c.contact_id.in_(contact_ids)))
        run(delete(journey).where(journey.c.contact_id.in_(contact_ids)))
        run(delete(contact).where(contact.c.id.in_(contact_ids)))
        if dry_run:
            session.rollback()
        else:
            now = utcnow()
            kind = str(IdentityKind.EMAIL_SHA256)
            forgotten = [(kind, hashed), *(("crm_id", c) for c in crm_ids)]
            rows = [{"kind": k, "value": v, "forgotten_at": now} for k, v in forgotten]
            upsert(session, models.Forgotten, rows, ["kind", "value"])
            session.commit()
    return result


def _forget_conversions(session: Session, crm_ids: set[str]) -> int:
    """The conversions about the person (as the one whose identifiers went, or whose creation
    was the milestone), with their adjustments."""
    conv, adj = table_of(models.Conversion), table_of(models.ConversionAdjustment)
    run = session.connection().execute
    about = or_(
        conv.c.contact_crm_id.in_(crm_ids),
        and_(conv.c.milestone == "lead_created", conv.c.subject_id.in_(crm_ids)),
    )
    ids = set(run(select(conv.c.id).where(about)).scalars())
    run(delete(adj).where(adj.c.conversion_id.in_(ids)))
    return int(run(delete(conv).where(conv.c.id.in_(ids))).rowcount)
