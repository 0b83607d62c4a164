"""Vendor-neutral records that adapters produce and consume.

Every datetime is timezone-aware (UTC); adapters convert on the way in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class IdentityKind(StrEnum):
    """How a touchpoint or a CRM record names a person."""

    GA_CLIENT_ID = "ga_client_id"
    USER_ID = "user_id"
    EMAIL_SHA256 = "email_sha256"
    GCLID = "gclid"
    GBRAID = "gbraid"
    WBRAID = "wbraid"
    FBCLID = "fbclid"
    LI_FAT_ID = "li_fat_id"
    META_LEAD_ID = "meta_lead_id"
    PHONE_SHA256 = "phone_sha256"
    CRM_ID = "crm_id"


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """One marketing interaction of one (pseudonymous) person.

    ``key`` is unique within ``source`` and stable across re-reads, so restated data upserts.
    ``channel`` is set only by sources that know it (offline files); otherwise the channel rules
    classify ``utm_source`` / ``utm_medium`` / ``utm_campaign``.
    """

    source: str
    key: str
    occurred_at: datetime
    identity_kind: IdentityKind
    identity_value: str
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    landing_page: str = ""
    channel: str = ""
    campaign_id: str = ""


@dataclass(frozen=True, slots=True)
class Spend:
    """Cost of one campaign on one day; natural key (platform, account, campaign_id, day)."""

    platform: str
    account: str
    campaign_id: str
    campaign: str
    day: date
    cost: float
    currency: str
    clicks: int = 0
    impressions: int = 0
    channel: str = ""


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """A person-like CRM record (HubSpot contact, Salesforce Lead or Contact).

    ``properties`` holds the raw values of the fields the core asked for (identity fields,
    captured UTMs); ``merged_into`` points a converted lead to its contact.
    """

    object: str
    crm_id: str
    created_at: datetime
    updated_at: datetime
    properties: dict[str, str | None] = field(default_factory=dict)
    account_id: str | None = None
    merged_into: str | None = None


@dataclass(frozen=True, slots=True)
class CrmDeal:
    """A deal / opportunity with its buyers.

    ``closed_at`` is when a closed deal closed (Salesforce: the start of its close date in the
    org's time zone); ``close_date`` is its close date as the CRM shows it, in the CRM's time
    zone. ``stage`` is the CRM's internal stage id, ``stage_label`` what a person reads, and
    ``stage_order`` its place in the pipeline(s).
    """

    object: str
    crm_id: str
    name: str
    amount: float | None
    currency: str | None
    stage: str
    is_won: bool
    is_closed: bool
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    contact_ids: tuple[str, ...] = ()
    account_id: str | None = None
    close_date: date | None = None
    stage_label: str = ""
    stage_order: int = 0


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What the CRM says about one field: used by the preflight before any write."""

    name: str
    type: str  # "string" | "number" | "datetime" | "date" | "enumeration" | "bool"
    updateable: bool = True
    length: int | None = None
    picklist: tuple[str, ...] | None = None
    restricted: bool = False
    label: str = ""


@dataclass(frozen=True, slots=True)
class CurrencyRate:
    """A CRM's dated exchange rate: ``rate`` units of ``iso_code`` per one corporate currency
    unit, valid from ``start`` (inclusive) to ``end`` (exclusive)."""

    iso_code: str
    rate: float
    start: date
    end: date


@dataclass(frozen=True, slots=True)
class RecordUpdate:
    """New values for some fields of one CRM record (``None`` clears the field)."""

    crm_id: str
    values: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of one record of a write batch."""

    crm_id: str
    ok: bool
    error: str = ""


# -- offline conversions (CRM outcomes sent back to the ad platforms) -----------------------
@dataclass(frozen=True, slots=True)
class Conversion:
    """One CRM outcome (a lead, an opportunity, a won deal) for an ad platform.

    ``destination`` names where it goes: a Google Ads conversion action id, a Meta event name
    (on the pixel of the source settings), a LinkedIn conversion rule id. ``dedup_id`` is the
    platform's deduplication key (Google ``orderId``, Meta ``event_id``, LinkedIn ``eventId``):
    sent twice, it counts once. Emails and phones arrive normalised and SHA-256 hashed the
    platform's way; click ids as the ad click carried them.
    """

    dedup_id: str
    destination: str
    occurred_at: datetime
    value: float | None = None
    currency: str | None = None
    gclid: str = ""
    gbraid: str = ""
    wbraid: str = ""
    fbclid: str = ""
    fbclid_at: datetime | None = None  # when the click id was captured (Meta's fbc needs it)
    li_fat_id: str = ""
    lead_id: str = ""  # a Meta lead ads lead id
    email_sha256: str = ""
    phone_sha256: str = ""
    consent: bool | None = None  # the person's ad consent; None: no consent field is mapped


@dataclass(frozen=True, slots=True)
class ConversionAdjustment:
    """A later change to an accepted conversion: its new value, or ``value=None`` to retract
    it (the deal was lost or reopened)."""

    dedup_id: str
    destination: str
    adjusted_at: datetime
    value: float | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class ConversionResult:
    """What the platform said about one conversion or adjustment.

    ``status``: ``accepted`` (also when the platform already had it: a re-send after a crash),
    ``rejected`` (with the platform's reason), ``retry`` (not yet: send again on a later run) or
    ``test`` (taken as a test event, not counted live).
    """

    dedup_id: str
    status: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ConversionDestination:
    """A conversion action / event / rule as the platform knows it (checked before sending).

    ``problem`` says why nothing can be sent there ("" when it is usable);
    ``click_window_days`` is how long after a click a conversion still counts (Google Ads)."""

    id: str
    name: str = ""
    problem: str = ""
    click_window_days: int | None = None


# -- touchpoint records: one CRM record per marketing touch -----------------------------------
@dataclass(frozen=True, slots=True)
class TouchSchema:
    """The CRM's touchpoint object as the preflight found it.

    ``object`` names it in audits and messages; ``fields`` are the fields a mapping may fill
    (the key and the links to people and deals are the adapter's own); ``links`` the objects a
    record can hang under, by the names the core uses for people and deals. ``pending``: the
    object does not exist yet and will be created as described on the first sync."""

    object: str
    fields: dict[str, FieldSpec]
    links: tuple[str, ...]
    pending: bool = False


@dataclass(frozen=True, slots=True)
class TouchRecordWrite:
    """One touchpoint record to create or update, found by ``key`` (its external id).

    ``links`` maps each linkable object (``Lead``, ``Contact``, ``Opportunity``; ``contacts``,
    ``deals``) to the record it hangs under, None for none; ``old_links`` is what closedloop
    linked it to before, so a CRM that links by association can remove what no longer holds."""

    key: str
    values: dict[str, str | None]
    links: dict[str, str | None]
    old_links: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TouchRecordDelete:
    """A touchpoint record to delete: its key and, when known, its CRM id."""

    key: str
    crm_id: str | None


@dataclass(frozen=True, slots=True)
class TouchRecordResult:
    """Outcome of one touchpoint record of a write: its CRM id once it exists."""

    key: str
    ok: bool
    crm_id: str | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class TouchRecordState:
    """A touchpoint record as the CRM holds it now (read by key)."""

    crm_id: str
    values: dict[str, str | None]
    links: dict[str, str | None]
