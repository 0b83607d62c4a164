"""The people conversions are about: their hashed identifiers, consent and click touches.

At extract time the CRM's raw email and phone are hashed each platform's way (the generic
``email_sha256`` already is the trim-and-lower-case hash Meta and LinkedIn take; Google Ads
drops the dots of Gmail addresses; phones are E.164 digits, Google hashes them with ``+``):
only the hashes are stored. At send time :func:`load_people` reads them back per person.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from connector.kernel.batches import chunks
from connector.kernel.identity import email_hash, normalise_id, normalise_phone
from connector.kernel.records import CrmRecord, IdentityKind
from connector.store import models
from connector.store.database import table_of

EMAIL = str(IdentityKind.EMAIL_SHA256)
PHONE = str(IdentityKind.PHONE_SHA256)
IN_CHUNK = 900  # values per IN (...) list: far below every backend's bound-parameter limit


def platform_kind(kind: str, platform: str) -> str:
    """The identity kind of a hash normalised one platform's way: ``phone_sha256:google_ads``."""
    return f"{kind}:{platform}"


def hashed_identities(ctx: Any, record: CrmRecord) -> list[tuple[str, str]]:
    """Per-platform hashes of the record's email and phone, for the platforms conversions.yaml
    sends to; empty without a conversions mapping."""
    if ctx.conversions is None:
        return []
    fields = ctx.mapping.identity
    props = record.properties
    found: list[tuple[str, str]] = []
    raw_email = normalise_id(props.get(fields.email)) if fields.email else ""
    calling_code = ctx.conversions.mapping.phone_calling_code
    phone = normalise_phone(props.get(fields.phone), calling_code) if fields.phone else ""
    for platform, sink in ctx.sinks().items():
        if raw_email and (hashed := sink.hash_email(raw_email)) != email_hash(raw_email):
            found.append((platform_kind(EMAIL, platform), hashed))
        if phone and (hashed := sink.hash_phone(phone)):
            found.append((platform_kind(PHONE, platform), hashed))
    return found


def consent_rows(ctx: Any, record: CrmRecord, contact_id: int | None) -> list[dict[str, Any]]:
    if ctx.conversions is None:
        return []
    return [
        {"contact_id": contact_id, "field": name, "value": (record.properties.get(name) or "")}
        for name in ctx.conversions.mapping.consent_fields()
    ]


@dataclass
class Touch:
    occurred_at: datetime
    source: str
    utm_source: str
    channel: str
    campaign: str
    identity_kind: str
    identity_value: str


@dataclass
class Person:
    """A CRM person (with the leads converted into it) as the conversions step sees it."""

    crm_id: str
    created_at: datetime
    ids: dict[str, str] = field(default_factory=dict)  # identity kind -> value
    consent: dict[str, str] = field(default_factory=dict)  # consent field -> value
    touches: list[Touch] = field(default_factory=list)  # oldest first
    forgotten: bool = False

    def hashed(self, kind: str, platform: str) -> str:
        """The platform's hash, else the generic one (emails: the same for most platforms)."""
        specific = self.ids.get(platform_kind(kind, platform), "")
        return specific or (self.ids.get(kind, "") if kind == EMAIL else "")


def select_in(session: Session, stmt: Any, column: Any, values: Iterable[Any]) -> list[Any]:
    rows: list[Any] = []
    for part in chunks(sorted(set(values)), IN_CHUNK):
        rows.extend(session.execute(stmt.where(column.in_(part))).all())
    return rows


def forgotten(session: Session) -> set[tuple[str, str]]:
    tbl = table_of(models.Forgotten)
    return {(k, v) for k, v in session.execute(select(tbl.c.kind, tbl.c.value)).all()}


def load_people(session: Session, crm_ids: Collection[str]) -> dict[str, Person]:
    """The people ``crm_ids`` name (converted leads folded into their contact), with their
    identities, consent values and touches."""
    wanted = set(crm_ids)
    contact = table_of(models.Contact)
    cols = select(contact.c.id, contact.c.crm_id, contact.c.created_at, contact.c.merged_into)
    rows = select_in(session, cols, contact.c.crm_id, wanted)
    rows += select_in(session, cols, contact.c.merged_into, wanted)
    people: dict[str, Person] = {}
    owner: dict[int, str] = {}  # contact row id -> the person's crm id
    for cid, crm_id, created_at, merged_into in rows:
        owner[cid] = crm_id if crm_id in wanted else merged_into
        person = people.setdefault(owner[cid], Person(owner[cid], created_at))
        person.created_at = min(person.created_at, created_at)

    def own_first(row: Any) -> tuple[bool, int]:  # the person's own values win over its leads'
        return (row[0] not in wanted_rows, row[0])

    wanted_rows = {cid for cid, crm_id, *_ in rows if crm_id in wanted}
    identity, consent = table_of(models.Identity), table_of(models.ContactConsent)
    stmt = select(identity.c.contact_id, identity.c.kind, identity.c.value)
    rows = select_in(session, stmt, identity.c.contact_id, owner)
    for cid, kind, value in sorted(rows, key=own_first):
        people[owner[cid]].ids.setdefault(kind, value)
    stmt = select(consent.c.contact_id, consent.c.field, consent.c.value)
    rows = select_in(session, stmt, consent.c.contact_id, owner)
    for cid, name, value in sorted(rows, key=own_first):
        people[owner[cid]].consent.setdefault(name, value)
    tp = table_of(models.Touchpoint)
    stmt = select(
        tp.c.contact_id,
        tp.c.occurred_at,
        tp.c.source,
        tp.c.utm_source,
        tp.c.channel,
        tp.c.campaign_key,
        tp.c.identity_kind,
        tp.c.identity_value,
    )  # superseded ad clicks too: GA4 saw the session, but the click's time still counts
    rows = select_in(session, stmt, tp.c.contact_id, owner)
    for cid, *values in sorted(rows, key=lambda r: r[1]):
        people[owner[cid]].touches.append(Touch(*values))
    gone = forgotten(session)
    for person in people.values():
        email = person.ids.get(EMAIL, "")
        person.forgotten = ("crm_id", person.crm_id) in gone or (EMAIL, email) in gone
    return people
