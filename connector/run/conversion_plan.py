"""Plan the conversions: which CRM milestones become which platform conversions on this run.

    conversions.yaml entry -> milestones inside the platform's window (people created; deals
    created, in a stage, won) -> the person whose identifiers go (not forgotten, consented,
    identifiable on that platform) -> the value in the mapping's currency -> new, to re-send
    (a run stopped before the platform confirmed it) or already done.

Nothing here writes or sends: the plan is what ``--dry-run`` lists and what the step records
before it sends.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from connector.config.conversions import ConversionMapping, Milestone
from connector.kernel.records import Conversion, ConversionDestination, IdentityKind
from connector.run.conversion_people import EMAIL, PHONE, Person, load_people, select_in
from connector.store import models
from connector.store.database import table_of

# Identifiers each platform matches on, best first: click ids, then hashed contact data.
CLICK_IDS = {
    "google_ads": ("gclid", "gbraid", "wbraid"),
    "meta_ads": ("meta_lead_id", "fbclid"),
    "linkedin_ads": ("li_fat_id",),
}
# utm_source values that say a touch came from the platform's ads (for the report's campaign)
PLATFORM_SOURCES = {
    "google_ads": {"google", "adwords", "google_ads"},
    "meta_ads": {"facebook", "fb", "instagram", "ig", "meta"},
    "linkedin_ads": {"linkedin", "linkedin_ads", "lnkd.in"},
}
SKIP_REASONS = {
    "forgotten": "the person was forgotten (closedloop forget)",
    "no_consent": "no consent: the consent field does not hold an allowed value",
    "no_identifier": "nothing to match the person on this platform (no click id or email)",
    "no_rate": "the amount's currency has no rate in currency.rates",
    "no_amount": "the deal has no amount and the event needs a value",
    "no_person": "the deal has no contact closedloop knows",
}


@dataclass
class Planned:
    """One conversion to send (or to record as rejected: ``problem``)."""

    entry: int  # index in conversions.yaml
    mapping: ConversionMapping
    source: str
    dedup_id: str
    subject_id: str
    occurred_at: datetime
    person: Person
    matched_by: str
    value: float | None = None
    currency: str | None = None
    value_base: float | None = None
    campaign: str = ""
    row_id: int | None = None  # the ledger row of a conversion sent before, to re-send
    problem: str = ""
    consented: bool = False  # a consent field applies and holds an allowed value

    def payload(self) -> Conversion:
        """The vendor-neutral record the platform's adapter sends."""
        p, platform = self.person, self.mapping.platform
        ids = {k: p.ids.get(k, "") for k in CLICK_IDS[platform]}
        return Conversion(
            dedup_id=self.dedup_id,
            destination=self.mapping.destination,
            occurred_at=self.occurred_at,
            value=self.value,
            currency=self.currency,
            gclid=ids.get("gclid", ""),
            gbraid=ids.get("gbraid", ""),
            wbraid=ids.get("wbraid", ""),
            fbclid=ids.get("fbclid", ""),
            fbclid_at=p.created_at if ids.get("fbclid") else None,
            li_fat_id=ids.get("li_fat_id", ""),
            lead_id=ids.get("meta_lead_id", ""),
            email_sha256=p.hashed(EMAIL, platform) if self.uses_contact_data() else "",
            phone_sha256=p.hashed(PHONE, platform) if self.uses_contact_data() else "",
            consent=True if self.consented else None,
        )

    def uses_contact_data(self) -> bool:
        """Google takes hashed contact data only for enhanced conversions for leads, and only
        when no click id identifies the click."""
        if self.mapping.platform != "google_ads":
            return True
        return self.mapping.enhanced_conversions_for_leads and self.matched_by in {"email", "phone"}


@dataclass
class ConversionPlan:
    send: list[Planned] = field(default_factory=list)
    rejected: list[Planned] = field(default_factory=list)  # recorded, not sent
    # (row id, status, reason): sent by a stopped run or to retry, and not sendable any more
    expired: list[tuple[int, str, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, what: str) -> None:
        self.skipped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < 5 and what not in shown:
            shown.append(what)


_HASHED = re.compile(r"^cl-[0-9a-f]{40}$")  # an id too long for the platforms, hashed


def dedup_id(mapping: ConversionMapping, subject_id: str) -> str:
    """Stable per milestone and deal or person: the platforms count a repeat of it once."""
    tag = {
        Milestone.LEAD_CREATED: "lead",
        Milestone.OPPORTUNITY_CREATED: "opp",
        Milestone.CLOSED_WON: "won",
    }.get(mapping.milestone)
    if tag is None:  # stage_reached: one conversion per set of stages
        stages = "|".join(sorted(mapping.stages)).encode()
        tag = "stage-" + hashlib.sha256(stages).hexdigest()[:8]
    text = f"cl-{tag}-{subject_id}"
    return text if len(text) <= 64 else "cl-" + hashlib.sha256(text.encode()).hexdigest()[:40]


class Planner:
    """Builds the plan of one conversions.yaml entry at a time (see the module docstring)."""

    def __init__(self, ctx: Any, now: datetime, test_mode: dict[str, bool]) -> None:
        self.ctx = ctx
        self.now = now
        self.test_mode = test_mode  # per source
        self.plan = ConversionPlan()
        currency = ctx.loaded.config.currency
        self.currency = ctx.conversions.mapping.currency or currency.base
        self.rate = 1.0 if self.currency == currency.base else currency.rates[self.currency]

    def add(
        self, entry: int, mapping: ConversionMapping, source: str, dest: ConversionDestination
    ) -> None:
        # the oldest milestone the platform takes; Google's own limit is on the click (checked
        # per conversion against the action's click-through window)
        max_age: timedelta = self.ctx.sources[source].event_max_age
        since = self.now - max_age
        with Session(self.ctx.engine) as session:
            subjects = self._subjects(session, mapping, since)
            done = self._ledger(session, mapping, [dedup_id(mapping, s) for s in subjects])
            people = load_people(session, {c for s in subjects.values() for c in s["people"]})
            unsettled = self._unsettled(session, mapping)
        for subject_id, subject in subjects.items():
            if mapping.milestone == Milestone.LEAD_CREATED and subject_id in people:
                subject["at"] = people[subject_id].created_at  # converted leads included
            key = dedup_id(mapping, subject_id)
            row = done.get(key)
            if row is not None and not self._resend(row, source):
                continue
            candidates = [people[c] for c in subject["people"] if c in people]
            planned = self._conversion(
                entry, mapping, source, key, subject_id, subject, row, candidates, since
            )
            if planned is None or planned.occurred_at < since:
                continue
            self._google_click_window(planned, dest)
            (self.plan.rejected if planned.problem else self.plan.send).append(planned)
        resent = {p.row_id for p in self.plan.send}
        for row in unsettled:  # sent by a stopped run, or to retry, and now not sendable
            if row["id"] in resent:
                continue
            late = row["occurred_at"] < since
            why = (
                f"older than the platform's {max_age.days}-day window"
                if late
                else "the person is no longer eligible (consent, deal or contact changed)"
            )
            if row["status"] == "retry":
                self.plan.expired.append((row["id"], "rejected", f"{row['reason']}; now {why}"))
            else:
                sent = "a stopped run sent it before the platform answered; not sent again"
                self.plan.expired.append((row["id"], "unconfirmed", f"{sent}: {why}"))

    def _resend(self, row: dict[str, Any], source: str) -> bool:
        if row["status"] in {"pending", "retry"}:
            return True
        return row["status"] == "test" and not self.test_mode[source]

    def _subjects(
        self, session: Session, mapping: ConversionMapping, since: datetime
    ) -> dict[str, dict[str, Any]]:
        """Deal or person CRM id -> when the milestone happened, the deal, its people."""
        if mapping.milestone == Milestone.LEAD_CREATED:
            contact = table_of(models.Contact)
            rows = session.execute(
                select(contact.c.crm_id, contact.c.created_at).where(
                    contact.c.merged_into.is_(None), contact.c.created_at >= since
                )
            ).all()
            return {crm_id: {"at": at, "deal": None, "people": [crm_id]} for crm_id, at in rows}
        deal = table_of(models.Deal)
        stmt = select(deal)
        if mapping.milestone == Milestone.OPPORTUNITY_CREATED:
            stmt, at = stmt.where(deal.c.created_at >= since), "created_at"
        elif mapping.milestone == Milestone.STAGE_REACHED:
            stmt = stmt.where(deal.c.stage.in_(mapping.stages), deal.c.updated_at >= since)
            at = "updated_at"  # when closedloop first saw it there (kept once recorded)
        else:
            stmt = stmt.where(deal.c.is_won.is_(True), deal.c.closed_at >= since)
            at = "closed_at"
        deals = {r.crm_id: r._asdict() for r in session.execute(stmt).all()}
        links = table_of(models.DealContact)
        pairs = select(links.c.deal_crm_id, links.c.contact_crm_id)
        people: dict[str, list[str]] = {d: [] for d in deals}
        for deal_id, contact_id in sorted(select_in(session, pairs, links.c.deal_crm_id, deals)):
            people[deal_id].append(contact_id)
        return {d: {"at": row[at], "deal": row, "people": people[d]} for d, row in deals.items()}

    @staticmethod
    def _unsettled(session: Session, mapping: ConversionMapping) -> list[dict[str, Any]]:
        conv = table_of(models.Conversion)
        stmt = select(conv).where(
            conv.c.platform == mapping.platform,
            conv.c.destination == mapping.destination,
            conv.c.milestone == str(mapping.milestone),
            conv.c.status.in_(["pending", "retry"]),
        )
        prefix = dedup_id(mapping, "")  # "cl-won-", "cl-stage-<its stages>-": this entry's ids
        rows = [r._asdict() for r in session.execute(stmt).all()]
        return [r for r in rows if r["dedup_id"].startswith(prefix) or _HASHED.match(r["dedup_id"])]

    def _ledger(
        self, session: Session, mapping: ConversionMapping, keys: list[str]
    ) -> dict[str, dict[str, Any]]:
        conv = table_of(models.Conversion)
        stmt = select(conv).where(
            conv.c.platform == mapping.platform, conv.c.destination == mapping.destination
        )
        return {r.dedup_id: r._asdict() for r in select_in(session, stmt, conv.c.dedup_id, keys)}

    def _conversion(
        self,
        entry: int,
        mapping: ConversionMapping,
        source: str,
        key: str,
        subject_id: str,
        subject: dict[str, Any],
        row: dict[str, Any] | None,
        candidates: list[Person],
        since: datetime,
    ) -> Planned | None:
        what = f"{mapping.name}: {'deal' if mapping.per_deal else 'person'} {subject_id}"
        if row is not None:  # a re-send: the same person, time and value as first recorded
            person = next((p for p in candidates if p.crm_id == row["contact_crm_id"]), None)
            if person is None or person.forgotten or not self._consents(mapping, person):
                return None
            return Planned(
                entry,
                mapping,
                source,
                key,
                subject_id,
                row["occurred_at"],
                person,
                row["matched_by"],
                row["value"],
                row["currency"],
                row["value_base"],
                row["campaign"],
                row["id"],
                consented=bool(self._consent(mapping)),
            )
        if subject["at"] is None or subject["at"] < since:
            return None
        # people who joined the deal after its milestone did not bring it about (and their
        # clicks would come after the conversion)
        existing = [p for p in candidates if p.created_at <= subject["at"]]
        reason, person, matched_by = self._person(mapping, existing)
        if person is None:
            self.plan.skip(reason, what)
            return None
        value = self._value(mapping, subject["deal"])
        if isinstance(value, str):
            self.plan.skip(value, what)
            return None
        planned = Planned(
            entry,
            mapping,
            source,
            key,
            subject_id,
            subject["at"],
            person,
            matched_by,
            consented=bool(self._consent(mapping)),
        )
        if value is not None:
            planned.value, planned.currency = value, self.currency
            planned.value_base = round(value * self.rate, 2)
        planned.campaign = self._campaign(planned)
        return planned

    def _consent(self, mapping: ConversionMapping) -> Any:
        return self.ctx.conversions.mapping.consent_for(mapping)

    def _consents(self, mapping: ConversionMapping, person: Person) -> bool:
        consent = self._consent(mapping)
        return consent is None or consent.allows(person.consent.get(consent.field))

    def _person(
        self, mapping: ConversionMapping, candidates: list[Person]
    ) -> tuple[str, Person | None, str]:
        """The consented, not forgotten person with the best identifier for the platform."""
        best: tuple[int, Person, str] | None = None
        ranks = (*CLICK_IDS[mapping.platform], "email", "phone")
        why: set[str] = set()
        for person in sorted(candidates, key=lambda p: (p.created_at, p.crm_id)):
            if person.forgotten:
                why.add("forgotten")
            elif not self._consents(mapping, person):
                why.add("no_consent")
            elif (
                rank := next(
                    (n for n, kind in enumerate(ranks) if self._has(mapping, person, kind)), None
                )
            ) is None:
                why.add("no_identifier")
            elif best is None or rank < best[0]:
                best = (rank, person, ranks[rank])
        if best is None:
            order = ("no_consent", "no_identifier", "forgotten")
            return next((r for r in order if r in why), "no_person"), None, ""
        return "", best[1], best[2]

    @staticmethod
    def _has(mapping: ConversionMapping, person: Person, kind: str) -> bool:
        if kind in {"email", "phone"}:
            if mapping.platform == "google_ads" and not mapping.enhanced_conversions_for_leads:
                return False
            return bool(person.hashed(EMAIL if kind == "email" else PHONE, mapping.platform))
        return bool(person.ids.get(kind))

    def _value(self, mapping: ConversionMapping, deal: dict[str, Any] | None) -> float | str | None:
        """The value in the mapping's currency, or the reason it cannot be given."""
        if mapping.value is None:
            return None
        if mapping.value != "amount":
            return round(float(mapping.value), 2)
        assert deal is not None  # lead_created cannot take `amount` (checked by the model)
        if deal["amount"] is None:
            return "no_amount" if mapping.event_name == "Purchase" else None
        if deal["amount_base"] is None:
            return "no_rate"
        return round(float(deal["amount_base"]) / self.rate, 2)

    @staticmethod
    def _campaign(planned: Planned) -> str:
        """The campaign of the platform's last ad touch of the person before the milestone."""
        platform, person = planned.mapping.platform, planned.person
        for touch in reversed(person.touches):
            if touch.occurred_at > planned.occurred_at:
                continue
            if touch.source == platform or (
                touch.utm_source.lower() in PLATFORM_SOURCES[platform]
                and touch.channel.startswith("Paid")
            ):
                return touch.campaign
        return ""

    @staticmethod
    def _google_click_window(planned: Planned, dest: ConversionDestination) -> None:
        """A gclid whose click is known and older than the action's window: Google would answer
        EXPIRED_EVENT, so it is recorded as rejected and not sent."""
        if planned.matched_by != "gclid" or not dest.click_window_days:
            return
        gclid = planned.person.ids.get(str(IdentityKind.GCLID))
        clicks = [
            t.occurred_at
            for t in planned.person.touches
            if t.identity_kind == IdentityKind.GCLID and t.identity_value == gclid
        ]
        if clicks and planned.occurred_at - min(clicks) > timedelta(days=dest.click_window_days):
            planned.problem = (
                f"EXPIRED_EVENT: the click of {min(clicks):%Y-%m-%d} is older than conversion "
                f"action {dest.id}'s {dest.click_window_days}-day click-through window; not sent"
            )
