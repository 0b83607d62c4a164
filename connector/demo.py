"""``closedloop demo``: the whole loop against local emulators seeded with a synthetic company.

The emulators are real HTTP servers speaking the vendors' wire formats, so the demo runs the real
client libraries end to end; only the data is made up.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import adapters
from connector.config import dump_yaml
from connector.identity import normalise_email
from connector.synthetic import Company, generate
from connector.timeutil import iso_z

GA4_PROPERTY = "123456"
TOKENS = {
    "CLOSEDLOOP_DEMO_HUBSPOT_TOKEN": "pat-na1-demo-0000",
    "CLOSEDLOOP_DEMO_SALESFORCE_SESSION": "00Ddemo!AQ8AQdemo.session",
    "CLOSEDLOOP_DEMO_GA4_TOKEN": "ya29.demo-token",
}
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


def seed_hubspot(emu: Any, company: Company) -> None:
    ids: dict[int, str] = {}
    for p in company.people:
        props = {
            "email": p.email,
            "firstname": p.first_name,
            "lastname": p.last_name,
            "company": p.company,
            "ga_client_id": p.client_id,
            "closedloop_user_id": p.user_id,
            "hs_facebook_click_id": p.fbclid,
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
    """People as Leads; a lead that buys (or a share of the rest) is converted to a Contact."""
    emu.install_closedloop_fields()
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
        emu.add_session(
            client_id=v.client_id,
            started_at=v.started_at,
            source=v.source,
            medium=v.medium,
            campaign=v.campaign,
            landing_page=v.landing_page,
            user_id=v.user_id,
        )


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


def _config(urls: dict[str, str], crm: str) -> dict[str, Any]:
    return {
        "store": {"url": "sqlite:///closedloop.db"},
        "crm": {"kind": crm, "settings": _crm_settings(crm, urls[crm])},
        "sources": [
            {
                "name": "ga4",
                "kind": "ga4",
                "settings": {
                    "property_id": GA4_PROPERTY,
                    "access_token": "${CLOSEDLOOP_DEMO_GA4_TOKEN}",
                    "api_endpoint": urls["ga4"],
                    "identity_dimension": "customUser:ga_client_id",
                },
            }
        ],
        "mappings": {"channels": "mappings/channels.yaml", "crm": f"mappings/{crm}.yaml"},
        "sync": {
            "initial_days": 200,
            "models": ["first_touch", "last_touch", "linear"],
            "report_model": "linear",
        },
        "currency": {"base": "USD", "rates": {"EUR": 1.08, "GBP": 1.27}},  # no CHF: reported
    }


def shipped_folder(name: str) -> Path:
    """The ``mappings/`` or ``config/`` folder shipped beside the package."""
    folder = Path(__file__).resolve().parent.parent / name
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: install closedloop from a clone (pip install -e .)"
        )
    return folder


def start_demo(workdir: Path, crm: str = "hubspot", company: Company | None = None) -> DemoSystems:
    """Seed and start the emulators, write a config for them into ``workdir`` (reset first)."""
    company = company or generate()
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "mappings").mkdir(parents=True)
    for name in ("channels.yaml", f"{crm}.yaml"):
        shutil.copy(shipped_folder("mappings") / name, workdir / "mappings" / name)
    os.environ.update(TOKENS)
    if crm == "salesforce":
        crm_emu = adapters.emulator_class(crm)(
            session_id=TOKENS["CLOSEDLOOP_DEMO_SALESFORCE_SESSION"]
        )
        seed_salesforce(crm_emu, company)
    else:
        crm_emu = adapters.emulator_class(crm)(access_token=TOKENS["CLOSEDLOOP_DEMO_HUBSPOT_TOKEN"])
        seed_hubspot(crm_emu, company)
    ga4_emu = adapters.emulator_class("ga4")(
        property_id=GA4_PROPERTY, access_token=TOKENS["CLOSEDLOOP_DEMO_GA4_TOKEN"]
    )
    seed_ga4(ga4_emu, company)
    emulators = {crm: crm_emu.start(), "ga4": ga4_emu.start()}
    config_path = workdir / "closedloop.yaml"
    config_path.write_text(
        "# Written by `closedloop demo`: points at the local emulators it started.\n"
        + dump_yaml(_config({k: e.url for k, e in emulators.items()}, crm))
    )
    return DemoSystems(emulators, config_path)


def emails_of(company: Company) -> dict[str, str]:
    return {normalise_email(p.email): p.email for p in company.people}
