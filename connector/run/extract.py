"""Extract: touchpoints and spend from the sources and people from the CRM, into the store.

Each stream reads from its cursor (a source's minus its lookback: sources restate recent days;
a CRM's through :func:`connector.run.crm_stream.read_stream`), upserts on natural keys, and
moves its cursor only after the rows are committed.

Every row remembers the configured source that read it (``origin``). A source whose reads of a
stream are complete (``full_refresh``, e.g. a CSV file) is the truth for that stream's rows:
after a complete read, its rows that read did not see are removed, with their credits. Rows of
a source (or a file) no longer in the config stay as they are (reported in the log).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, TypeVar

from sqlalchemy import delete, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, SQLModel, col, select

from connector.kernel import metrics
from connector.kernel.batches import chunks
from connector.kernel.identity import email_hash, normalise_id
from connector.kernel.protocols import RejectsRows
from connector.kernel.records import (
    CrmRecord,
    IdentityKind,
    Spend,
    Touchpoint,
)
from connector.kernel.timeutil import utcnow
from connector.run.context import RunContext
from connector.run.conversion_people import consent_rows, hashed_identities
from connector.run.crm_stream import read_stream
from connector.store import models
from connector.store.database import table_of
from connector.store.staged import Staged
from connector.store.writes import (
    get_cursor,
    insert_rows,
    set_cursor,
    upsert,
    upsert_values,
)

log = logging.getLogger(__name__)
BATCH = 5000
# Rows of a source staged per statement (50,000 touchpoints stay under ~100 MB in flight).
SOURCE_BATCH = 50_000
# The interpreter's thread switch interval while a source loads (Python's is 5 ms): the merging
# thread waits that long for the parsing one at each statement (10M touches: 139 -> 128 s).
LOAD_SWITCH_SECONDS = 0.0005
T = TypeVar("T")


def _since(ctx: RunContext, system: str, stream: str, started: datetime) -> datetime:
    """Where a source's read of ``stream`` starts: it re-reads ``lookback_days`` (sources
    restate recent numbers) and starts ``initial_days`` back."""
    sync = ctx.loaded.config.sync
    with Session(ctx.engine) as session:
        cursor = get_cursor(session, system, stream)
    if cursor:
        return cursor - timedelta(days=sync.lookback_days)
    return started - timedelta(days=sync.initial_days)


def load_stream(
    ctx: RunContext,
    system: str,
    stream: str,
    read: Callable[[datetime | None], Iterable[T]],
    model: type[SQLModel],
    columns: Sequence[str],
    row: Callable[[T], tuple[Any, ...]],
    keys: Sequence[str],
) -> int:
    """Read a source's stream from its cursor and upsert its rows on ``keys`` through
    :class:`Staged`: staged and merged batch by batch, all committed with the moved cursor in
    one transaction (a source's streams run to millions of rows). ``row`` gives an item's
    values in the order of ``columns``. A stop between batches, or a kill, leaves the table
    and the cursor as they were: the next run reads the stream again. After a complete read
    (the source's ``full_refresh``), the stream's rows of this source it no longer holds are
    removed in the same transaction."""
    started = utcnow()
    since = _since(ctx, system, stream, started)
    task = ctx.progress.task(f"{system}: {stream}")
    n = 0
    # A second thread merges a batch while this one reads the next: the store's work (outside
    # the GIL: in sqlite3_step, or waiting for PostgreSQL) and the parsing overlap on two
    # cores. The connection is used by one thread at a time.
    with (
        Session(ctx.engine) as session,
        ThreadPoolExecutor(1) as merger,
        _switching(LOAD_SWITCH_SECONDS),
    ):
        staged = Staged(session, model, columns, keys)
        merging: Future[int] | None = None
        for chunk in chunks(map(row, read(since)), SOURCE_BATCH):
            if merging is not None:
                merging.result()
            staged.add(chunk)
            merging = merger.submit(staged.merge, final=False)
            n += len(chunk)
            task.advance(len(chunk))
            ctx.checkpoint()
        if merging is not None:
            merging.result()
        if stream in getattr(ctx.sources.get(system), "full_refresh", ()):
            if gone := staged.missing("origin", system):
                remove(session, model, gone)
                log.info("%s: removed %d %s rows no longer in its file", system, len(gone), stream)
                ctx.count(f"{system}.{stream}_removed", len(gone))
        staged.merge()
        set_cursor(session, system, stream, started)
        session.commit()
    task.finish()
    metrics.RECORDS_READ.labels(system).inc(n)
    return n


@contextmanager
def _switching(seconds: float) -> Iterator[None]:
    """The interpreter's thread switch interval set to ``seconds``, then given back."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def remove(session: Session, model: type[SQLModel], ids: list[int]) -> None:
    """Delete these rows of ``model`` (touchpoints with their credits)."""
    table, cr = table_of(model), table_of(models.Credit)
    conn = session.connection()
    for batch in chunks(ids, BATCH):
        if model is models.Touchpoint:
            conn.execute(delete(cr).where(cr.c.touchpoint_id.in_(batch)))
        conn.execute(delete(table).where(table.c.id.in_(batch)))


TOUCH_COLUMNS = (
    "source", "key", "occurred_at", "identity_kind", "identity_value", "utm_source",
    "utm_medium", "utm_campaign", "landing_page", "campaign_id", "preset_channel", "origin",
)  # fmt: skip
TOUCH_KEYS = ("source", "key")
SPEND_FIELDS = tuple(f.name for f in fields(Spend))
_spend_values = attrgetter(*SPEND_FIELDS)
SPEND_COLUMNS = (*SPEND_FIELDS, "cost_base", "origin")
SPEND_KEYS = ("platform", "account", "campaign_id", "day")


def touchpoint_row(t: Touchpoint, origin: str = "") -> tuple[Any, ...]:
    """A touchpoint's values in the order of :data:`TOUCH_COLUMNS`."""
    return (
        t.source, t.key, t.occurred_at, str(t.identity_kind), t.identity_value, t.utm_source,
        t.utm_medium, t.utm_campaign, t.landing_page, t.campaign_id, t.channel, origin,
    )  # fmt: skip


def store_touchpoints(session: Session, touchpoints: Iterable[Touchpoint], origin: str = "") -> int:
    n = 0
    for batch in chunks(touchpoints, SOURCE_BATCH):
        rows = [touchpoint_row(t, origin) for t in batch]
        upsert_values(session, models.Touchpoint, TOUCH_COLUMNS, rows, TOUCH_KEYS)
        n += len(batch)
    return n


def spend_row(ctx: RunContext, s: Spend, origin: str = "") -> tuple[Any, ...]:
    """A spend row's values in the order of :data:`SPEND_COLUMNS`."""
    cost_base = ctx.loaded.config.currency.to_base(s.cost, s.currency)
    if cost_base is None:
        ctx.count("spend_unknown_currency")
    return (*_spend_values(s), cost_base, origin)


def extract_sources(ctx: RunContext) -> None:
    for name, source in ctx.sources.items():
        extract_source(ctx, name, source)
    report_unconfigured(ctx)


def extract_source(ctx: RunContext, name: str, source: Any) -> None:
    n = load_stream(
        ctx, name, "touchpoints", source.touchpoints, models.Touchpoint, TOUCH_COLUMNS,
        lambda t: touchpoint_row(t, name), TOUCH_KEYS,
    )  # fmt: skip
    ctx.count(f"{name}.touchpoints", n)
    n = load_stream(
        ctx, name, "spend", source.spend, models.Spend, SPEND_COLUMNS,
        lambda s: spend_row(ctx, s, name), SPEND_KEYS,
    )  # fmt: skip
    ctx.count(f"{name}.spend", n)
    if isinstance(source, RejectsRows):
        count, first = source.rejected_rows()
        if count:
            ctx.count(f"{name}.rows_rejected", count)
            ctx.rejected += [(name, row) for row in first]


def report_unconfigured(ctx: RunContext) -> None:
    """Rows of a source that left the config stay; say so, so nobody takes them for current.
    (Every source ever read has a cursor: a cheap way to find the ones that left.)"""
    cursor, configured = table_of(models.Cursor), [*ctx.sources, ctx.crm_kind]
    with Session(ctx.engine) as session:
        gone = session.execute(
            sa_select(cursor.c.source)
            .where(cursor.c.stream.in_(("touchpoints", "spend")))
            .where(cursor.c.source.not_in(configured))
            .distinct()
        ).scalars()
        for origin in sorted(gone):
            for model in (models.Touchpoint, models.Spend):
                tbl = table_of(model)
                n = session.execute(
                    sa_select(func.count()).select_from(tbl).where(tbl.c.origin == origin)
                ).scalar_one()
                if n:
                    log.warning("%d %s rows come from source %r, which is no longer in the "
                                "config; they stay in the store", n, tbl.name, origin)  # fmt: skip


def _identities(ctx: RunContext, record: CrmRecord) -> list[tuple[str, str]]:
    fields = ctx.mapping.identity
    props = record.properties
    found = [(str(IdentityKind.CRM_ID), record.crm_id)]
    if fields.email and (email := normalise_id(props.get(fields.email))):
        found.append((str(IdentityKind.EMAIL_SHA256), email_hash(email)))
    for kind, prop in (
        (IdentityKind.GA_CLIENT_ID, fields.ga_client_id),
        (IdentityKind.USER_ID, fields.user_id),
        (IdentityKind.GCLID, fields.gclid),
        (IdentityKind.FBCLID, fields.fbclid),
        (IdentityKind.GBRAID, fields.gbraid),
        (IdentityKind.WBRAID, fields.wbraid),
        (IdentityKind.LI_FAT_ID, fields.li_fat_id),
        (IdentityKind.META_LEAD_ID, fields.meta_lead_id),
    ):
        if prop and (value := normalise_id(props.get(prop))):
            found.append((str(kind), value))
    return found + hashed_identities(ctx, record)


# The sources of the touches a CRM record carries itself.
RECORD_SOURCES = ("crm_form", "crm_click_id")


def _record_touchpoints(ctx: RunContext, record: CrmRecord) -> list[Touchpoint]:
    """Touches the record itself carries: form-captured UTMs and a Meta click id.

    A converted lead's are skipped: its contact carries the same values (Salesforce's lead
    field mapping), and counting both would double the form touch.
    """
    if record.merged_into:
        return []
    props = record.properties
    utm = ctx.mapping.captured_utm
    touches = []
    source = normalise_id(props.get(utm.source)) if utm.source else ""
    if source:
        touches.append(
            Touchpoint(
                source="crm_form",
                key=f"{record.crm_id}:utm",
                occurred_at=record.created_at,
                identity_kind=IdentityKind.CRM_ID,
                identity_value=record.crm_id,
                utm_source=source,
                utm_medium=normalise_id(props.get(utm.medium or "")),
                utm_campaign=normalise_id(props.get(utm.campaign or "")),
            )
        )
    fbclid_field = ctx.mapping.identity.fbclid
    if fbclid_field and normalise_id(props.get(fbclid_field)):
        touches.append(
            Touchpoint(
                source="crm_click_id",
                key=f"{record.crm_id}:fbclid",
                occurred_at=record.created_at,
                identity_kind=IdentityKind.CRM_ID,
                identity_value=record.crm_id,
                utm_source="facebook",
                utm_medium="paid_social",
            )
        )
    return touches


def store_contacts(ctx: RunContext, session: Session, batch: list[CrmRecord]) -> None:
    upsert(
        session,
        models.Contact,
        [
            {
                "crm_object": r.object,
                "crm_id": r.crm_id,
                "created_at": r.created_at,
                "updated_at": r.updated_at,
                "account_id": r.account_id,
                "merged_into": r.merged_into,
            }
            for r in batch
        ],
        ["crm_id"],
    )
    ids = dict(
        session.exec(
            select(models.Contact.crm_id, models.Contact.id).where(
                col(models.Contact.crm_id).in_([r.crm_id for r in batch])
            )
        ).all()
    )
    session.execute(
        delete(models.Identity).where(col(models.Identity.contact_id).in_(list(ids.values())))
    )
    insert_rows(
        session,
        models.Identity,
        [
            {"kind": kind, "value": value, "contact_id": ids[r.crm_id]}
            for r in batch
            for kind, value in dict.fromkeys(_identities(ctx, r))
        ],
    )
    if ctx.conversions is not None:
        consent = table_of(models.ContactConsent)
        session.execute(delete(consent).where(consent.c.contact_id.in_(list(ids.values()))))
        insert_rows(
            session,
            models.ContactConsent,
            [row for r in batch for row in consent_rows(ctx, r, ids[r.crm_id])],
        )
    touches = [t for r in batch for t in _record_touchpoints(ctx, r)]
    store_touchpoints(session, touches, ctx.crm_kind)
    # A record whose captured UTMs or click id were cleared (or a lead since converted) no
    # longer carries its touch: remove it, with its credits.
    tp, cr = table_of(models.Touchpoint), table_of(models.Credit)
    gone = sa_select(tp.c.id).where(
        tp.c.source.in_(RECORD_SOURCES),
        tp.c.identity_kind == str(IdentityKind.CRM_ID),
        tp.c.identity_value.in_([r.crm_id for r in batch]),
        tp.c.key.not_in([t.key for t in touches]),
    )
    session.execute(delete(cr).where(cr.c.touchpoint_id.in_(gone)))
    session.execute(delete(tp).where(tp.c.id.in_(gone)))


def read_properties(ctx: RunContext) -> list[str]:
    """The person fields read: identities, captured UTMs and conversions.yaml's consent."""
    consent = ctx.conversions.mapping.consent_fields() if ctx.conversions else []
    return list(dict.fromkeys([*ctx.mapping.read_properties(), *consent]))


def extract_contacts(ctx: RunContext, counted: str = "contacts_read") -> None:
    n = read_stream(
        ctx, "contacts",
        lambda since: ctx.crm.contacts(since, read_properties(ctx)),
        lambda session, batch: store_contacts(ctx, session, batch),
        models.Contact, ctx.crm.person_objects,
    )  # fmt: skip
    ctx.count(counted, n)
