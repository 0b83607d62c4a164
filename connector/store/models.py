"""The store's tables (SQLModel). Raw emails are never stored: identities hold SHA-256 hashes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    SmallInteger,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no offset: store UTC, re-attach it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, straight to the text SQLAlchemy stores (``2026-01-02 03:04:05.000000``)
        in one step: bulk loads bind millions of times, at a third of the cost."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not UTC:
                if value.tzinfo is None:
                    raise ValueError(f"naive datetime {value!r} given to the store")
                value = value.astimezone(UTC)
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(UtcDateTime(), nullable=nullable, index=index)


class Contact(SQLModel, table=True):
    """A CRM person record (HubSpot contact, Salesforce Lead or Contact)."""

    id: int | None = Field(default=None, primary_key=True)
    crm_object: str
    crm_id: str = Field(unique=True)
    created_at: datetime = Field(sa_column=_ts())
    updated_at: datetime = Field(sa_column=_ts())
    account_id: str | None = None
    merged_into: str | None = Field(default=None, description="Converted lead -> contact crm_id")


class Identity(SQLModel, table=True):
    """An identity key (kind, value) of a contact: GA client id, user id, email hash, click id."""

    __table_args__ = (UniqueConstraint("kind", "value", "contact_id"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)
    value: str = Field(index=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)


class Touchpoint(SQLModel, table=True):
    __table_args__ = (
        # An index, not a constraint: a first load builds it after the rows are in.
        Index("ux_touchpoint_key", "source", "key", unique=True),
        # A person's touches as the attribute step reads them, from the index alone: one range
        # per buyer instead of one table page per touch (5x faster at 10M touches). ``id``
        # second: new touches (no contact yet) are appended at the end, not placed at random.
        Index("ix_touchpoint_journey", "contact_id", "id", "occurred_at", "channel", "superseded"),
    )
    id: int | None = Field(default=None, primary_key=True)
    source: str
    key: str
    occurred_at: datetime = Field(sa_column=_ts(index=True))
    identity_kind: str
    identity_value: str  # matched through identity's index, never looked up here
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    landing_page: str = ""
    campaign_id: str = ""
    preset_channel: str = ""
    channel: str = Field(default="", index=True)
    campaign_key: str = Field(default="", description="Joined campaign name (campaigns.yaml)")
    contact_id: int | None = None  # indexed by ix_touchpoint_journey
    superseded: bool = Field(default=False, description="An ad click GA4 also saw as a session")
    origin: str = Field(
        default="", index=True, description="The configured source (or CRM) that read it"
    )


class ContactJourney(SQLModel, table=True):
    """Per contact: the touches the write-back and the report use (computed by the match step)."""

    __tablename__ = "contact_journey"

    contact_id: int = Field(primary_key=True)
    first_touch_id: int | None = None
    lead_touch_id: int | None = None
    last_touch_id: int | None = None
    touch_count: int = 0
    channel_path: str = Field(default="", description="Every touch's channel, in time order")
    created_at: datetime | None = Field(
        default=None,
        sa_column=_ts(nullable=True),
        description="The person's creation: the earliest of the contact and its converted leads",
    )


class Deal(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    crm_object: str
    crm_id: str = Field(unique=True)
    name: str = ""
    amount: float | None = None
    currency: str | None = None
    amount_base: float | None = None
    stage: str = ""
    is_won: bool = False
    is_closed: bool = False
    created_at: datetime = Field(sa_column=_ts())
    updated_at: datetime = Field(sa_column=_ts())
    closed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    account_id: str | None = None
    close_date: date | None = Field(default=None, description="In the CRM's time zone")
    close_day_end: datetime | None = Field(
        default=None,
        sa_column=_ts(nullable=True),
        description="When the close date ends in the CRM's time zone (journeys run up to it)",
    )
    stage_label: str = ""
    stage_order: int = 0


class DealContact(SQLModel, table=True):
    __tablename__ = "deal_contact"
    deal_crm_id: str = Field(primary_key=True)
    contact_crm_id: str = Field(primary_key=True)


class Spend(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("platform", "account", "campaign_id", "day"),)
    id: int | None = Field(default=None, primary_key=True)
    platform: str
    account: str
    campaign_id: str
    campaign: str = ""
    day: date
    cost: float
    currency: str
    cost_base: float | None = None
    clicks: int = 0
    impressions: int = 0
    channel: str = ""
    campaign_key: str = ""
    origin: str = Field(default="", description="The configured source that read it")


CREDIT_MODELS: tuple[str, ...] = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
    "w_shaped",
    "full_path",
    "markov",
    "markov_k",
    "shapley",
)
"""The attribution models ``credit.model`` stores by code: a model's place in this tuple. Stored
rows keep their codes, so a new model is appended, and none is ever moved or removed."""


def credit_model_code(name: str) -> int:
    """The stored code of a model name (ValueError for a name that is no model)."""
    try:
        return CREDIT_MODELS.index(name)
    except ValueError:
        raise ValueError(f"unknown attribution model {name!r}") from None


def credit_model_name_sql(column: str) -> str:
    """SQL turning the code in ``column`` back into the model's name, for raw queries that
    group, order or compare by name."""
    cases = " ".join(f"WHEN {code} THEN '{name}'" for code, name in enumerate(CREDIT_MODELS))
    return f"(CASE {column} {cases} END)"


class ModelCode(TypeDecorator[str]):
    """A model name in Python, its code (:data:`CREDIT_MODELS`) in the store: two bytes a row
    instead of the name, on the largest table the attribute step writes."""

    impl = SmallInteger
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else credit_model_code(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> str | None:
        return None if value is None else CREDIT_MODELS[value]


class Credit(SQLModel, table=True):
    """Share of a deal's amount given to one touchpoint by one model.

    Rewritten whole by each attribute step, model by model in key order: the key leads with the
    model (a model's credits are one range of it, as reports and records read them), and on
    SQLite the table is the key (WITHOUT ROWID), so the rows are appended to one B-tree instead
    of a table and an index beside it."""

    __table_args__ = {"sqlite_with_rowid": False}
    model: str = Field(sa_column=Column(ModelCode(), primary_key=True))
    deal_id: int = Field(primary_key=True)
    touchpoint_id: int = Field(primary_key=True)
    fraction: float
    amount: float


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_run"
    id: int | None = Field(default=None, primary_key=True)
    job: str = "sync"
    # running | succeeded | partial | failed | incomplete | interrupted | killed
    status: str = "running"
    dry_run: bool = False
    started_at: datetime = Field(sa_column=_ts())
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    counts: str = "{}"
    error: str = ""
    api_calls: int = 0


WHOLE_RECORD = "*"
"""``FieldWrite.field`` of a touchpoint record's create, update or delete: ``record_id`` is its
key, ``old_value`` / ``new_value`` the JSON of the whole record before / after (None: absent)."""


class FieldWrite(SQLModel, table=True):
    """Audit of every CRM write, recorded before it is sent (a field, or a whole touchpoint
    record: :data:`WHOLE_RECORD`)."""

    __tablename__ = "field_write"
    # A run's rows of a record: settling a batch must never scan the whole run, so there is no
    # index on ``run_id`` alone for a planner to pick (queries by run use this one's prefix).
    __table_args__ = (Index("ix_field_write_run_record", "run_id", "record_id"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int
    crm_object: str
    record_id: str = Field(index=True)
    field: str
    old_value: str | None = None
    new_value: str | None = None
    status: str = "pending"  # pending | ok | failed | not_applied | rolled_back
    error: str = ""


class WritebackRecord(SQLModel, table=True):
    """A CRM record closedloop writes fields to, with a digest of the values (and policies) it
    last settled there: written, or found there already. A re-sync reads back only records
    whose digest changed or that the CRM modified since (see ``run.writeback_reads``)."""

    __tablename__ = "writeback_record"
    crm_object: str = Field(primary_key=True)
    record_id: str = Field(primary_key=True)
    digest: int = Field(sa_column=Column(BigInteger, nullable=False))


class TouchRecord(SQLModel, table=True):
    """What closedloop last wrote to each touchpoint record in the CRM: a sync diffs against it
    instead of reading every record back. Changed in the transaction that settles the write.
    ``inputs_hash`` signs what the record was rendered from, ``values_hash`` its JSON."""

    __tablename__ = "touch_record"
    key: str = Field(primary_key=True, description="The record's external id in the CRM")
    crm_id: str | None = None
    inputs_hash: int = Field(sa_column=Column(BigInteger, nullable=False))  # 0: unknown
    values_hash: int = Field(sa_column=Column(BigInteger, nullable=False))
    written: str = Field(description="JSON {fields, links} as last written")
    person_id: str = Field(index=True, description="CRM id of the person it hangs under")
    run_id: int


class Cursor(SQLModel, table=True):
    """Per source and stream: the watermark of the last committed read."""

    source: str = Field(primary_key=True)
    stream: str = Field(primary_key=True)
    value: datetime = Field(sa_column=_ts())


class Lock(SQLModel, table=True):
    """A held store lock. Its holder renews ``heartbeat_at`` while it lives (see store.lock)."""

    __tablename__ = "job_lock"  # the older `lock` table (owner + 6-hour expiry) is not read
    name: str = Field(primary_key=True)
    token: str = Field(description="Unique per acquisition: only its holder renews or frees it")
    owner: str = Field(description="host and pid, for people")
    process: str = Field(default="", description="boot id, pid namespace, pid, start time")
    run_id: int | None = None
    acquired_at: datetime = Field(sa_column=_ts())
    heartbeat_at: datetime = Field(sa_column=_ts())


class RejectedRow(SQLModel, table=True):
    """An input row a source could not use, kept on the run that read it (the first ones)."""

    __tablename__ = "rejected_row"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    source: str
    message: str  # file:line:column: reason


# -- offline conversions (conversions.yaml) --------------------------------------------------
class ContactConsent(SQLModel, table=True):
    """A consent field's value on a CRM person (the fields conversions.yaml names)."""

    __tablename__ = "contact_consent"
    contact_id: int = Field(primary_key=True)
    field: str = Field(primary_key=True)
    value: str = ""


class Conversion(SQLModel, table=True):
    """Every conversion sent to an ad platform, recorded ``pending`` before it is sent.

    One row per (platform, destination, dedup_id): ``dedup_id`` is stable per milestone and
    deal or person, so a re-run or a re-send after a crash never makes a second conversion.
    ``value`` is the current value (after accepted restatements). Identifiers are not kept here:
    they are read from the person at send time, so ``forget`` reaches them.
    """

    __table_args__ = (UniqueConstraint("platform", "destination", "dedup_id"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True, description="The run that last sent or settled it")
    name: str = Field(description="The conversions.yaml entry")
    platform: str
    destination: str = Field(description="Conversion action id, Meta event name, rule id")
    milestone: str
    subject_id: str = Field(index=True, description="The deal's or the person's CRM id")
    contact_crm_id: str = Field(index=True, description="The person whose identifiers are sent")
    dedup_id: str
    occurred_at: datetime = Field(sa_column=_ts())
    value: float | None = None
    currency: str | None = None
    value_base: float | None = None
    campaign: str = ""
    matched_by: str = Field(default="", description="gclid, fbclid, li_fat_id, email, ...")
    # pending | accepted | rejected | retry | test | retracted | unconfirmed (sent by a stopped
    # run, not sendable any more: the platform may or may not hold it)
    status: str = "pending"
    reason: str = ""
    sent_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    updated_at: datetime = Field(sa_column=_ts())


class ConversionAdjustment(SQLModel, table=True):
    """A restatement (new value) or retraction of an accepted conversion, recorded before it is
    sent; ``adjusted_at`` is kept so a re-send is the same adjustment."""

    __tablename__ = "conversion_adjustment"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    conversion_id: int = Field(index=True)
    kind: str  # restatement | retraction
    old_value: float | None = None
    new_value: float | None = None
    adjusted_at: datetime = Field(sa_column=_ts())
    status: str = "pending"  # pending | accepted | rejected | retry
    reason: str = ""


class Forgotten(SQLModel, table=True):
    """People erased with ``closedloop forget``: nothing about them is sent to an ad platform
    again, even while the CRM still holds them. ``kind`` is email_sha256 or crm_id."""

    kind: str = Field(primary_key=True)
    value: str = Field(primary_key=True)
    forgotten_at: datetime = Field(sa_column=_ts())
