"""A deterministic synthetic B2B company for the demo and the end-to-end tests.

People visit the site over several months through a dozen channels, some fill in a form (and
become CRM contacts, a share with form-captured UTMs), some of those buy. Dates are relative to
``today`` so the demo always has recent data; everything else depends only on ``seed``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

# (source, medium, campaigns, weight, conversion lift): the mix the demo's visitors come from
TRAFFIC: tuple[tuple[str, str, tuple[str, ...], float, float], ...] = (
    ("google", "organic", ("(organic)",), 26, 1.0),
    ("bing", "organic", ("(organic)",), 3, 1.0),
    ("(direct)", "(none)", ("(direct)",), 16, 0.9),
    ("google", "cpc", ("brand-search", "generic-analytics", "competitor-terms"), 14, 1.4),
    ("linkedin", "paid_social", ("abm-enterprise", "webinar-promo"), 8, 1.6),
    ("facebook", "cpc", ("retargeting-q3",), 5, 0.8),
    ("linkedin", "social", ("(organic)",), 4, 1.1),
    ("newsletter", "email", ("monthly-digest", "product-launch"), 7, 1.3),
    ("g2.com", "referral", ("(referral)",), 5, 1.5),
    ("partner.io", "referral", ("(referral)",), 3, 1.7),
    ("gdn", "display", ("awareness-display",), 4, 0.5),
    ("affiliate-net", "affiliate", ("(affiliate)",), 2, 0.7),
    ("youtube", "cpc", ("product-video",), 3, 0.9),
)
PAGES = ("/", "/pricing", "/product", "/blog/attribution-101", "/demo", "/customers", "/webinar")
FIRST = (
    "ana",
    "ben",
    "chloé",
    "dev",
    "emma",
    "farid",
    "gita",
    "hugo",
    "ines",
    "jon",
    "kai",
    "lena",
    "mo",
    "nora",
    "omar",
    "pia",
    "raj",
    "sara",
    "tom",
    "uma",
    "vik",
    "wen",
    "yara",
)
LAST = (
    "silva",
    "meyer",
    "okafor",
    "tanaka",
    "novak",
    "haddad",
    "larsen",
    "rossi",
    "kim",
    "dubois",
    "garcia",
    "nguyen",
    "kowalski",
    "berg",
    "shah",
)
COMPANIES = (
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "vandelay",
    "oscorp",
    "duff",
    "monarch",
)
OPEN_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
)


@dataclass(frozen=True)
class Person:
    key: int
    email: str
    first_name: str
    last_name: str
    company: str
    client_id: str
    user_id: str | None
    created_at: datetime
    utm: tuple[str, str, str] | None
    fbclid: str | None
    gclid: str | None


@dataclass(frozen=True)
class Visit:
    client_id: str
    user_id: str | None
    started_at: datetime
    source: str
    medium: str
    campaign: str
    landing_page: str


@dataclass(frozen=True)
class DealSpec:
    name: str
    amount: float
    currency: str
    stage: str
    created_at: datetime
    closed_at: datetime | None
    people: tuple[int, ...]


@dataclass(frozen=True)
class DailySpend:
    platform: str
    campaign_id: str
    campaign: str
    day: date
    cost: float
    clicks: int
    impressions: int


@dataclass(frozen=True)
class AdClick:
    """A Google Ads click whose gclid a form captured; GA4 saw the session only sometimes."""

    gclid: str
    campaign: str
    day: date


@dataclass(frozen=True)
class OfflineTouch:
    person: int
    at: datetime
    channel: str
    campaign: str


@dataclass
class Company:
    people: list[Person] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    deals: list[DealSpec] = field(default_factory=list)
    spend: list[DailySpend] = field(default_factory=list)
    clicks: list[AdClick] = field(default_factory=list)
    offline: list[OfflineTouch] = field(default_factory=list)
    offline_spend: list[DailySpend] = field(default_factory=list)


# Offline programmes: (channel, campaign, day after the start, cost, share of people there)
EVENTS = (
    ("Events", "Martech Summit 2026", 55, 18500.0, 0.05),
    ("Webinar", "Attribution Masterclass", 110, 2400.0, 0.07),
)


def _client_id(rng: random.Random) -> str:
    return f"{rng.randrange(10**9, 10**10)}.{rng.randrange(1_600_000_000, 1_760_000_000)}"


def _pick_traffic(rng: random.Random) -> tuple[str, str, str, float]:
    source, medium, campaigns, _, lift = rng.choices(TRAFFIC, weights=[t[3] for t in TRAFFIC])[0]
    return source, medium, rng.choice(campaigns), lift


def generate(
    seed: int = 7,
    contacts: int = 2000,
    visits: int = 20000,
    deals: int = 300,
    months: int = 6,
    today: date | None = None,
) -> Company:
    """Build the company; the same arguments always give the same data (dates shift with today)."""
    rng = random.Random(seed)
    end = datetime.combine(today or datetime.now(UTC).date(), datetime.min.time(), tzinfo=UTC)
    start = end - timedelta(days=30 * months)
    span = (end - start).total_seconds()
    company = Company()
    lift_of: dict[int, float] = {}
    for key in range(contacts):
        first, last, org = rng.choice(FIRST), rng.choice(LAST), rng.choice(COMPANIES)
        created = start + timedelta(seconds=rng.uniform(0.15, 0.9) * span)
        n_before = rng.choices((1, 2, 3, 4, 5, 6, 8), weights=(18, 22, 20, 14, 10, 9, 7))[0]
        client = _client_id(rng)
        user_id = f"u{key:05d}" if rng.random() < 0.3 else None
        lift = 1.0
        last_touch: tuple[str, str, str] | None = None
        gclid: str | None = None
        times = sorted(
            created - timedelta(minutes=rng.uniform(5, 60 * 24 * 45)) for _ in range(n_before)
        )
        times[-1] = created - timedelta(minutes=rng.uniform(1, 30))
        times += sorted(
            created + timedelta(hours=rng.uniform(2, 24 * 60)) for _ in range(rng.randrange(0, 4))
        )
        for at in times:
            if at >= end:
                continue
            source, medium, campaign, visit_lift = _pick_traffic(rng)
            lift = max(lift, visit_lift)
            if at <= created:
                last_touch = (source, medium, campaign)
            if (source, medium) == ("google", "cpc") and at <= created and rng.random() < 0.35:
                gclid = f"Cj0KCQ{rng.randrange(16**12):012x}"
                company.clicks.append(AdClick(gclid, campaign, at.date()))
                if rng.random() < 0.5:
                    continue  # consent declined: GA4 never saw this session
            company.visits.append(
                Visit(
                    client,
                    user_id if at > created else None,
                    at,
                    source,
                    medium,
                    campaign,
                    rng.choice(PAGES),
                )
            )
        # a share of addresses are typed with capitals and spaces: matching must not care
        email = f"{first}.{last}{key}@{org}.example"
        if key % 17 == 0:
            email = f" {email.title()} "
        utm = last_touch if last_touch and rng.random() < 0.4 else None
        fbclid = (
            f"IwAR{rng.randrange(10**12):012d}"
            if last_touch and last_touch[0] == "facebook" and rng.random() < 0.5
            else None
        )
        company.people.append(
            Person(
                key,
                email,
                first.title(),
                last.title(),
                org.title(),
                client,
                user_id,
                created,
                utm,
                fbclid,
                gclid,
            )
        )
        lift_of[key] = lift
    for channel, campaign, offset, _, share in EVENTS:
        at = start + timedelta(days=offset, hours=15)
        for person in company.people:
            if at < end and rng.random() < share:
                company.offline.append(OfflineTouch(person.key, at, channel, campaign))
                lift_of[person.key] = max(lift_of[person.key], 1.6)
    while len(company.visits) < visits:  # visitors who never filled in a form
        source, medium, campaign, _ = _pick_traffic(rng)
        at = start + timedelta(seconds=rng.uniform(0, span))
        company.visits.append(
            Visit(_client_id(rng), None, at, source, medium, campaign, rng.choice(PAGES))
        )
    company.visits.sort(key=lambda v: v.started_at)
    weights = [lift_of[p.key] ** 2 for p in company.people]
    buyers = rng.choices(company.people, weights=weights, k=deals)
    for n, buyer in enumerate(buyers):
        created = buyer.created_at + timedelta(days=rng.uniform(1, 30))
        if created >= end:
            created = end - timedelta(days=1)
        colleagues = [p.key for p in rng.sample(company.people, rng.choice((0, 0, 1, 2)))]
        roll = rng.random() * lift_of[buyer.key]
        stage = (
            "closedwon" if roll > 0.75 else "closedlost" if roll < 0.35 else rng.choice(OPEN_STAGES)
        )
        closed = None
        if stage in {"closedwon", "closedlost"}:
            closed = min(created + timedelta(days=rng.uniform(7, 75)), end - timedelta(hours=1))
        currency = "EUR" if n % 11 == 0 else "CHF" if n == 299 else "USD"
        amount = round(rng.lognormvariate(9.9, 0.7), -2)
        company.deals.append(
            DealSpec(
                f"{buyer.company} – {rng.choice(('Growth', 'Team', 'Enterprise'))} plan",
                amount,
                currency,
                stage,
                created,
                closed,
                tuple(dict.fromkeys([buyer.key, *colleagues])),
            )
        )
    company.spend = _spend(rng, start.date(), end.date())
    company.offline_spend = [
        DailySpend(
            channel.lower(),
            slug_id(campaign),
            campaign,
            (start + timedelta(days=offset)).date(),
            cost,
            0,
            0,
        )
        for channel, campaign, offset, cost, _ in EVENTS
        if start + timedelta(days=offset) < end
    ]
    return company


def slug_id(name: str) -> str:
    return "-".join(name.lower().split())


def platform_name(campaign: str) -> str:
    """How an ad platform spells a UTM campaign (campaigns.yaml joins the odd one out)."""
    return "Brand Search | US" if campaign == "brand-search" else campaign.replace("-", " ").title()


PLATFORM_OF = {
    ("google", "cpc"): "google_ads",
    ("youtube", "cpc"): "google_ads",
    ("gdn", "display"): "google_ads",
    ("linkedin", "paid_social"): "linkedin_ads",
    ("facebook", "cpc"): "meta_ads",
}


def _spend(rng: random.Random, first: date, last: date) -> list[DailySpend]:
    rows = []
    next_id = 2300
    for source, medium, campaigns, weight, _ in TRAFFIC:
        platform = PLATFORM_OF.get((source, medium))
        if platform is None:
            continue
        for campaign in campaigns:
            next_id += 17
            campaign_id = str(next_id)
            day = first
            while day < last:
                clicks = max(0, int(rng.gauss(weight * 3, weight)))
                cost = round(clicks * rng.uniform(8.0, 24.0), 2)
                rows.append(
                    DailySpend(
                        platform,
                        campaign_id,
                        campaign,
                        day,
                        cost,
                        clicks,
                        clicks * rng.randrange(20, 60),
                    )
                )
                day += timedelta(days=1)
    return rows
