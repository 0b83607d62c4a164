"""``closedloop demo``: the whole loop against local emulators seeded with a synthetic company.

The emulators are real HTTP servers speaking the vendors' wire formats, so the demo runs the real
client libraries end to end; only the data is made up.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from connector import systems
from connector.config.loader import dump_yaml
from connector.demo.synthetic import EVENTS, Company, generate, platform_name
from connector.kernel.errors import ConfigError
from connector.kernel.timeutil import iso_z

GA4_PROPERTY = "123456"
TOKENS = {
    "CLOSEDLOOP_DEMO_HUBSPOT_TOKEN": "pat-na1-demo-0000",
    "CLOSEDLOOP_DEMO_SALESFORCE_SESSION": "00Ddemo!AQ8AQdemo.session",
    "CLOSEDLOOP_DEMO_GA4_TOKEN": "ya29.demo-token",
    "CLOSEDLOOP_DEMO_GOOGLE_ADS_TOKEN": "ya29.demo-ads-token",
    "CLOSEDLOOP_DEMO_GOOGLE_ADS_DEVELOPER_TOKEN": "demo-developer-token",
    "CLOSEDLOOP_DEMO_META_TOKEN": "EAAB-demo-token",
    "CLOSEDLOOP_DEMO_LINKEDIN_TOKEN": "AQV-demo-token",
}
AD_PLATFORMS = ("google_ads", "meta_ads", "linkedin_ads")
# Where the demo's won deals go back as conversions (seeded in the ad platform emulators).
GOOGLE_WON_ACTION = "7003"
META_PIXEL = "1234567890123456"
LINKEDIN_WON_RULE = "14488003"
CONSENT_FIELD = {"hubspot": "ads_consent", "salesforce": "Ads_Consent__c"}
SF_STAGES = {
    "closedwon": "Closed Won",
    "closedlost": "Closed Lost",
    "appointmentscheduled": "Prospecting",
    "qualifiedtobuy": "Qualification",
    "presentationscheduled": "Needs Analysis",
    "decisionmakerboughtin": "Proposal/Price Quote",
    "contractsent": "Negotiation/Review",
}


@dataclass
class DemoSystems:
    """The running emulators and the config that points at them."""

    emulators: dict[str, Any]
    config_path: Path

    def requests_served(self) -> dict[str, int]:
        return {name: len(emu.log) for name, emu in self.emulators.items()}

    def stop(self) -> None:
        for emu in self.emulators.values():
            emu.stop()


def demo_phone(key: int) -> str | None:
    """A third of the people left a phone number, some without the country code."""
    if key % 3:
        return None
    number = f"415 555 {key % 10_000:04d}"
    return f"+1 {number}" if key % 2 else f"({number[:3]}) {number[4:]}"


def demo_consent(key: int) -> str | None:
    """Most people agreed to ads measurement; some refused, a few were never asked."""
    return "denied" if key % 10 == 7 else None if key % 10 == 9 else "granted"


def seed_hubspot(emu: Any, company: Company) -> None:
    emu.add_property("contacts", "ads_consent", "enumeration", "select", "Ads consent",
                     options=("granted", "denied"))  # fmt: skip
    ids: dict[int, str] = {}
    for p in company.people:
        props = {
            "phone": demo_phone(p.key),
            "ads_consent": demo_consent(p.key),
            "email": p.email,
            "firstname": p.first_name,
            "lastname": p.last_name,
            "company": p.company,
            "ga_client_id": p.client_id,
            "closedloop_user_id": p.user_id,
            "hs_facebook_click_id": p.fbclid,
            "hs_google_click_id": p.gclid,
            "lifecyclestage": "lead",
        }
        if p.utm:
            props.update(zip(("utm_source", "utm_medium", "utm_campaign"), p.utm, strict=True))
        ids[p.key] = emu.add_contact(props, created_at=p.created_at)
    for d in company.deals:
        emu.add_deal(
            {
                "dealname": d.name,
                "amount": f"{d.amount:.2f}",
                "dealstage": d.stage,
                "pipeline": "default",
                "deal_currency_code": d.currency,
                "closedate": iso_z(d.closed_at) if d.closed_at else None,
            },
            created_at=d.created_at,
            contact_ids=[ids[k] for k in d.people],
        )


def seed_salesforce(emu: Any, company: Company) -> None:
    """People as Leads; a lead that buys (or a share of the rest) is converted to a Contact.
    The org has closedloop's fields and its touchpoint object (deploy/salesforce)."""
    emu.install_closedloop_fields()
    for sobject in ("Lead", "Contact"):
        emu.add_field(sobject, CONSENT_FIELD["salesforce"], "picklist",
                      picklist=["granted", "denied"])  # fmt: skip
    emu.install_touchpoint_object()
    emu.enable_multicurrency({"USD": 1.0, "EUR": 0.926, "GBP": 0.787, "CHF": 0.88})
    buyers = {k for d in company.deals for k in d.people}
    accounts: dict[str, str] = {}
    contact_of: dict[int, str] = {}
    for p in company.people:
        fields = {
            "FirstName": p.first_name,
            "LastName": p.last_name,
            "Company": p.company,
            "Email": p.email,
            "Status": "Open - Not Contacted",
            "GA_Client_ID__c": p.client_id,
            "User_ID__c": p.user_id,
            "FBCLID__c": p.fbclid,
            "GCLID__c": p.gclid,
            "Phone": demo_phone(p.key),
            CONSENT_FIELD["salesforce"]: demo_consent(p.key),
        }
        if p.utm:
            fields.update(
                zip(("UTM_Source__c", "UTM_Medium__c", "UTM_Campaign__c"), p.utm, strict=True)
            )
        lead = emu.add_record("Lead", fields, p.created_at)
        if p.key in buyers or p.key % 5 == 0:
            account = accounts.get(p.company) or emu.add_record(
                "Account", {"Name": p.company}, p.created_at
            )
            accounts[p.company] = account
            contact = emu.convert_lead(lead, at=p.created_at + timedelta(days=2))
            emu.edit("Contact", contact, AccountId=account)
            contact_of[p.key] = contact
    for d in company.deals:
        buyer = contact_of[d.people[0]]
        opportunity = emu.add_record(
            "Opportunity",
            {
                "Name": d.name,
                "Amount": d.amount,
                "StageName": SF_STAGES[d.stage],
                "CloseDate": (d.closed_at or d.created_at + timedelta(days=45)).date().isoformat(),
                "CurrencyIsoCode": d.currency,
                "AccountId": emu.record("Contact", buyer)["AccountId"],
            },
            d.created_at,
        )
        for n, key in enumerate(d.people):
            emu.add_record(
                "OpportunityContactRole",
                {
                    "OpportunityId": opportunity,
                    "ContactId": contact_of[key],
                    "IsPrimary": n == 0,
                    "Role": "Decision Maker" if n == 0 else "Influencer",
                },
                d.created_at,
            )


def seed_ga4(emu: Any, company: Company) -> None:
    for v in company.visits:
        emu.add_session(client_id=v.client_id, started_at=v.started_at, source=v.source,
                        medium=v.medium, campaign=v.campaign, landing_page=v.landing_page,
                        user_id=v.user_id)  # fmt: skip


def seed_ad_platforms(emulators: dict[str, Any], company: Company) -> None:
    """Each platform's campaigns and daily numbers; Google Ads also knows the clicks' gclids."""
    ids: dict[str, str] = {}
    for row in company.spend:
        emu = emulators[row.platform]
        if row.campaign not in ids:
            ids[row.campaign] = row.campaign_id
            emu.add_campaign(row.campaign_id, platform_name(row.campaign))
        emu.add_daily(row.campaign_id, row.day, row.cost, row.clicks, row.impressions)
    for click in company.clicks:
        emulators["google_ads"].add_click(click.gclid, ids[click.campaign], click.day)
    emulators["google_ads"].add_conversion_action(GOOGLE_WON_ACTION, "CRM closed won")
    emulators["meta_ads"].add_pixel(META_PIXEL, "closedloop CRM events")
    emulators["linkedin_ads"].add_conversion_rule(LINKEDIN_WON_RULE, "CRM closed won", "PURCHASE")


def conversions_mapping(crm: str) -> dict[str, Any]:
    """The demo's mappings/conversions.yaml: every won deal back to the three platforms."""
    won = {"milestone": "closed_won", "value": "amount"}
    return {
        "consent": {"field": CONSENT_FIELD[crm], "values": ["granted"]},
        "phone_calling_code": "1",
        "conversions": [
            {"name": "google-won", "platform": "google_ads", **won,
             "conversion_action": GOOGLE_WON_ACTION, "enhanced_conversions_for_leads": True},
            {"name": "meta-won", "platform": "meta_ads", **won, "event_name": "Purchase"},
            {"name": "linkedin-won", "platform": "linkedin_ads", **won,
             "conversion_rule": LINKEDIN_WON_RULE},
        ],
    }  # fmt: skip


def write_offline_files(folder: Path, company: Company) -> tuple[Path, Path]:
    """The CSVs an events team exports: attendees, and what the events cost."""
    people = {p.key: p for p in company.people}
    touches, spend = folder / "offline_touchpoints.csv", folder / "offline_spend.csv"
    with touches.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "occurred_at", "channel", "campaign", "source", "medium"])
        for t in company.offline:
            writer.writerow([people[t.person].email.strip(), t.at.isoformat(), t.channel,
                             t.campaign, t.channel.lower(), "offline"])  # fmt: skip
    with spend.open("w", newline="") as out:
        writer = csv.writer(out)
        header = ["platform", "campaign_id", "campaign", "date", "cost", "currency", "channel"]
        writer.writerow(header)
        for s in company.offline_spend:
            channel = next(e[0] for e in EVENTS if e[1] == s.campaign)
            writer.writerow([s.platform, s.campaign_id, s.campaign, s.day.isoformat(),
                             f"{s.cost:.2f}", "USD", channel])  # fmt: skip
    return touches, spend


def _crm_settings(crm: str, url: str) -> dict[str, Any]:
    if crm == "salesforce":
        return {
            "instance_url": url,
            "session_id": "${CLOSEDLOOP_DEMO_SALESFORCE_SESSION}",
            "allow_http": True,
            "contact_roles": "all",
            "bulk_poll_interval": 0.2,
        }
    return {
        "access_token": "${CLOSEDLOOP_DEMO_HUBSPOT_TOKEN}",
        "host": url,
        "rate_limit_share": 0.9,
    }


def _sources(emulators: dict[str, Any]) -> list[dict[str, Any]]:
    ads = {name: emulators[name].adapter_settings() for name in AD_PLATFORMS}
    ads["google_ads"]["access_token"] = "${CLOSEDLOOP_DEMO_GOOGLE_ADS_TOKEN}"
    ads["google_ads"]["developer_token"] = "${CLOSEDLOOP_DEMO_GOOGLE_ADS_DEVELOPER_TOKEN}"
    ads["meta_ads"]["access_token"] = "${CLOSEDLOOP_DEMO_META_TOKEN}"
    ads["meta_ads"]["pixel_id"] = META_PIXEL
    ads["linkedin_ads"]["access_token"] = "${CLOSEDLOOP_DEMO_LINKEDIN_TOKEN}"
    return [
        {"name": "ga4", "kind": "ga4", "settings": {
            "property_id": GA4_PROPERTY, "access_token": "${CLOSEDLOOP_DEMO_GA4_TOKEN}",
            "api_endpoint": emulators["ga4"].url, "identity_dimension": "customUser:ga_client_id",
        }},
        *({"name": name, "kind": name, "settings": ads[name]} for name in AD_PLATFORMS),
        {"name": "offline", "kind": "csv_files", "settings": {
            "touchpoints_file": "offline_touchpoints.csv", "spend_file": "offline_spend.csv",
        }},
    ]  # fmt: skip


def _config(emulators: dict[str, Any], crm: str) -> dict[str, Any]:
    return {
        "secrets_file": "secrets.yaml",
        "store": {"url": "sqlite:///closedloop.db"},
        "crm": {"kind": crm, "settings": _crm_settings(crm, emulators[crm].url)},
        "sources": _sources(emulators),
        "mappings": {
            "channels": "mappings/channels.yaml",
            "crm": f"mappings/{crm}.yaml",
            "campaigns": "mappings/campaigns.yaml",
            "conversions": "mappings/conversions.yaml",
        },  # fmt: skip
        "sync": {
            "initial_days": 200,
            "models": ["first_touch", "last_touch", "linear"],
            "report_model": "linear",
        },  # fmt: skip
        "currency": {"base": "USD", "rates": {"EUR": 1.08, "GBP": 1.27}},  # no CHF: reported
    }


def enable_touchpoint_records(mapping: Path) -> None:
    """Switch ``touchpoint_records.enabled`` on in a CRM mapping, keeping its comments."""
    text = mapping.read_text()
    head, block, rest = text.partition("\ntouchpoint_records:\n")
    switched = rest.replace("  enabled: false\n", "  enabled: true\n", 1)
    if not block or switched == rest:
        raise ValueError(f"{mapping}: no `touchpoint_records: enabled: false` to switch on")
    mapping.write_text(head + block + switched)


def shipped_folder(name: str) -> Path:
    """The ``mappings/`` or ``config/`` folder shipped beside the package."""
    folder = Path(__file__).resolve().parents[2] / name
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: install closedloop from a clone (pip install -e .)"
        )
    return folder


# What the demo writes into its folder, and all it ever removes from it; the marker says the
# folder is the demo's, so a folder of someone else's is never touched.
MARKER = ".closedloop-demo"
DEMO_FILES = (
    MARKER, "closedloop.yaml", "secrets.yaml", "closedloop.db", "closedloop.db-wal",
    "closedloop.db-shm", "offline_touchpoints.csv", "offline_spend.csv",
    "mappings/channels.yaml", "mappings/campaigns.yaml", "mappings/hubspot.yaml",
    "mappings/salesforce.yaml",
)  # fmt: skip
# The fields that name a person on each CRM the demo seeds (shown with what closedloop wrote).
PERSON_NAME_FIELDS = {"hubspot": ("firstname", "lastname"), "salesforce": ("FirstName", "LastName")}


def prepare_folder(workdir: Path) -> None:
    """Make ``workdir`` ready for a demo: new, empty, or a previous demo's (whose own files
    are removed; anything else in it stays). Any other folder is refused."""
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--dir {workdir} is a file; the demo needs a folder")
    if workdir.is_dir() and any(workdir.iterdir()) and not (workdir / MARKER).exists():
        raise ConfigError(
            f"--dir {workdir} is not empty and was not made by `closedloop demo`; the demo "
            "never writes into (or deletes) someone else's files: choose a new or empty folder"
        )
    for name in DEMO_FILES:
        (workdir / name).unlink(missing_ok=True)
    (workdir / "mappings").mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text(
        "Made by `closedloop demo`, which may reset its own files here.\n"
    )


def start_demo(
    workdir: Path,
    crm: str = "hubspot",
    company: Company | None = None,
    touchpoint_records: bool = False,
) -> DemoSystems:
    """Seed and start the emulators, write a config for them into ``workdir`` (a new folder,
    an empty one, or an earlier demo's, whose own files are replaced); ``touchpoint_records``
    turns them on in the copied CRM mapping."""
    company = company or generate()
    prepare_folder(workdir)
    for name in ("channels.yaml", "campaigns.yaml", f"{crm}.yaml"):
        shutil.copy(shipped_folder("mappings") / name, workdir / "mappings" / name)
    (workdir / "mappings" / "conversions.yaml").write_text(
        "# Written by `closedloop demo`: won deals back to the ad platforms as conversions\n"
        "# (see mappings/conversions.yaml in the repository for every option).\n"
        + dump_yaml(conversions_mapping(crm))
    )
    if touchpoint_records:
        enable_touchpoint_records(workdir / "mappings" / f"{crm}.yaml")
    secrets = workdir / "secrets.yaml"  # what an admin keeps out of the repo, chmod 600
    secrets.write_text(dump_yaml(TOKENS))
    secrets.chmod(0o600)
    write_offline_files(workdir, company)
    emulator = systems.emulator_class
    if crm == "salesforce":
        crm_emu = emulator(crm)(session_id=TOKENS["CLOSEDLOOP_DEMO_SALESFORCE_SESSION"])
        seed_salesforce(crm_emu, company)
    else:
        crm_emu = emulator(crm)(access_token=TOKENS["CLOSEDLOOP_DEMO_HUBSPOT_TOKEN"])
        seed_hubspot(crm_emu, company)
    emulators: dict[str, Any] = {
        crm: crm_emu,
        "ga4": emulator("ga4")(
            property_id=GA4_PROPERTY, access_token=TOKENS["CLOSEDLOOP_DEMO_GA4_TOKEN"]
        ),
        "google_ads": emulator("google_ads")(
            access_token=TOKENS["CLOSEDLOOP_DEMO_GOOGLE_ADS_TOKEN"],
            developer_token=TOKENS["CLOSEDLOOP_DEMO_GOOGLE_ADS_DEVELOPER_TOKEN"],
        ),
        "meta_ads": emulator("meta_ads")(access_token=TOKENS["CLOSEDLOOP_DEMO_META_TOKEN"]),
        "linkedin_ads": emulator("linkedin_ads")(
            access_token=TOKENS["CLOSEDLOOP_DEMO_LINKEDIN_TOKEN"]
        ),
    }
    seed_ga4(emulators["ga4"], company)
    seed_ad_platforms(emulators, company)
    for emu in emulators.values():
        emu.start()
    config_path = workdir / "closedloop.yaml"
    config_path.write_text(
        "# Written by `closedloop demo`: points at the local emulators it started.\n"
        + dump_yaml(_config(emulators, crm))
    )
    return DemoSystems(emulators, config_path)
