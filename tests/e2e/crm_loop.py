"""A running closed loop for end-to-end tests: demo emulators plus CRM-neutral probes.

A probe reads one CRM emulator's records and request log in the same shape for every CRM, so
the same scenario runs against HubSpot and Salesforce.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from connector.config.loader import load_config
from connector.demo.emulators import DemoSystems, start_demo
from connector.demo.synthetic import Company
from connector.kernel.timeutil import iso_z
from connector.run.context import RunContext, build_context
from connector.run.sync import run_sync
from connector.store import models


class HubSpotProbe:
    """Reads the HubSpot emulator's state and request log."""

    crm = "hubspot"
    first, last = "cl_first_touch_channel", "cl_last_touch_channel"
    fields = ("cl_first_touch_channel", "cl_first_touch_campaign", "cl_first_touch_at",
              "cl_lead_touch_channel", "cl_lead_touch_source", "cl_last_touch_channel",
              "cl_last_touch_campaign", "cl_touch_count", "cl_channel_path")  # fmt: skip
    batch_max = 100
    write_path = "/crm/v3/objects/contacts/batch/update"
    campaign_fields = ("cl_first_touch_campaign", "cl_last_touch_campaign")
    touch_count, path = "cl_touch_count", "cl_channel_path"
    deal_campaign, deal_touch_count, deal_mix = (
        "cl_primary_campaign", "cl_touch_count", "cl_channel_mix"
    )  # fmt: skip

    def __init__(self, emu: Any) -> None:
        self.emu = emu

    def records(self) -> dict[str, dict[str, Any]]:
        return {cid: dict(c.properties) for cid, c in sorted(self.emu.objects["contacts"].items())}

    def email(self, props: dict[str, Any]) -> str:
        return str(props["email"])

    def deal_channels(self) -> dict[str, str | None]:
        """Each deal's primary channel as written by closedloop."""
        deals = self.emu.objects["deals"].items()
        return {did: d.properties.get("cl_primary_channel") for did, d in deals}

    def write_requests(self) -> list[Any]:
        return self.emu.requests("POST", "/batch/update")  # type: ignore[no-any-return]

    def batches(self) -> list[list[str]]:
        """The record ids of each write batch to people (deals have their own batches)."""
        return [
            [i["id"] for i in r.json()["inputs"]]
            for r in self.write_requests()
            if "/contacts/" in r.path
        ]

    def values_sent(self) -> int:
        return sum(len(i["properties"]) for r in self.write_requests() for i in r.json()["inputs"])

    def edit(self, record_id: str, **values: str | None) -> None:
        self.emu.edit("contacts", record_id, **values)

    def deal_records(self) -> dict[str, dict[str, Any]]:
        return {did: dict(d.properties) for did, d in self.emu.objects["deals"].items()}

    def set_time_zone(self, name: str) -> None:
        self.emu.time_zone = name

    def add_person(self, email: str, created_at: datetime, client_id: str | None) -> str:
        props = {"email": email, "firstname": "Test", "lastname": "Person",
                 "ga_client_id": client_id, "lifecyclestage": "lead"}  # fmt: skip
        return str(self.emu.add_contact(props, created_at=created_at))

    def add_deal(
        self, name: str, amount: float, person: str, created_at: datetime,
        closed_at: datetime | None, won: bool = True,
    ) -> str:  # fmt: skip
        """A deal of ``person``: won or lost at ``closed_at``, else open."""
        stage = ("closedwon" if won else "closedlost") if closed_at else "qualifiedtobuy"
        props = {"dealname": name, "amount": f"{amount:.2f}", "dealstage": stage,
                 "pipeline": "default", "deal_currency_code": "USD",
                 "closedate": iso_z(closed_at) if closed_at else None}  # fmt: skip
        return str(self.emu.add_deal(props, created_at=created_at, contact_ids=[person]))

    def clear_client_id(self, person: str) -> None:
        self.edit(person, ga_client_id=None)

    # -- touchpoint records --------------------------------------------------------------------
    touch_object = "touchpoints"
    touch_fields = ("occurred_at", "channel", "source", "medium", "campaign", "landing_page",
                    "position", "credit_linear", "revenue_linear")  # fmt: skip

    def touch_records(self) -> dict[str, dict[str, Any]]:
        """Live touchpoint records by key: their fields and what they are linked to."""
        out = {}
        for tid, record in self.emu.objects.get("touchpoints", {}).items():
            if record.archived:
                continue
            links = {
                to: next(iter(self.emu.associations.get(("touchpoints", to), {}).get(tid, {})),
                         None)
                for to in ("contacts", "deals")
            }  # fmt: skip
            fields = {f: record.properties.get(f) or None for f in self.touch_fields}
            out[str(record.properties["touchpoint_key"])] = {"fields": fields, "links": links}
        return out

    def touch_ids(self) -> dict[str, str]:
        """Key -> CRM id of the live touchpoint records."""
        return {
            str(r.properties["touchpoint_key"]): tid
            for tid, r in self.emu.objects.get("touchpoints", {}).items()
            if not r.archived
        }

    def edit_touch(self, key: str, channel: str) -> None:
        self.emu.edit("touchpoints", self.touch_ids()[key], channel=channel)

    def mutations(self) -> list[Any]:
        """Every request that can change the CRM (reads and searches excluded)."""
        return [
            r for r in self.emu.log
            if r.method != "GET" and not r.path.endswith(("/search", "/batch/read"))
        ]  # fmt: skip

    def touch_writes(self) -> list[Any]:
        """Writes of the touchpoints object: its schema, records and associations."""
        return [r for r in self.mutations() if "/2-" in r.path or r.path.endswith("/schemas")]


class SalesforceProbe(HubSpotProbe):
    """The same views of the Salesforce emulator (Leads not converted, and Contacts)."""

    crm = "salesforce"
    first, last = "First_Touch_Channel__c", "Last_Touch_Channel__c"
    fields = ("LeadSource", "First_Touch_Channel__c", "First_Touch_Campaign__c",
              "First_Touch_Date__c", "Lead_Touch_Channel__c", "Lead_Touch_Source__c",
              "Last_Touch_Channel__c", "Last_Touch_Campaign__c", "Touch_Count__c",
              "Channel_Path__c")  # fmt: skip
    batch_max = 200
    write_path = "/services/data/v59.0/composite/sobjects"
    campaign_fields = ("First_Touch_Campaign__c", "Last_Touch_Campaign__c")
    touch_count, path = "Touch_Count__c", "Channel_Path__c"
    deal_campaign, deal_touch_count, deal_mix = (
        "Primary_Campaign__c", "Touch_Count__c", "Channel_Mix__c"
    )  # fmt: skip

    def records(self) -> dict[str, dict[str, Any]]:
        out = {}
        for sobject in ("Lead", "Contact"):
            for rid, rec in sorted(self.emu.records[sobject].items()):
                if not rec.get("IsConverted"):
                    out[rid] = dict(rec)
        return out

    def email(self, props: dict[str, Any]) -> str:
        return str(props["Email"])

    def deal_channels(self) -> dict[str, str | None]:
        deals = self.emu.records["Opportunity"].items()
        return {oid: o.get("Primary_Channel__c") for oid, o in deals}

    def write_requests(self) -> list[Any]:
        collections = self.emu.requests("PATCH", "/composite/sobjects")
        return collections + self.emu.requests("PUT", "/jobs/ingest/")  # type: ignore[no-any-return]

    def batches(self) -> list[list[str]]:
        out = []
        for r in self.write_requests():
            if r.method == "PATCH":
                records = r.json()["records"]
                if records[0]["attributes"]["type"] in {"Lead", "Contact"}:
                    out.append([rec["id"] for rec in records])
            else:
                lines = r.body.decode().strip().splitlines()
                column = next(i for i, c in enumerate(lines[0].split(",")) if c.strip('"') == "Id")
                out.append([line.split(",")[column].strip('"') for line in lines[1:]])
        return out

    def values_sent(self) -> int:
        total = 0
        for r in self.emu.requests("PATCH", "/composite/sobjects"):
            total += sum(len(rec) - 2 for rec in r.json()["records"])  # minus attributes, id
        return total

    def edit(self, record_id: str, **values: str | None) -> None:
        sobject = "Lead" if record_id in self.emu.records["Lead"] else "Contact"
        self.emu.edit(sobject, record_id, **values)

    def deal_records(self) -> dict[str, dict[str, Any]]:
        return {oid: dict(o) for oid, o in self.emu.records["Opportunity"].items()}

    def set_time_zone(self, name: str) -> None:
        self.emu.set_time_zone(name)

    def add_person(self, email: str, created_at: datetime, client_id: str | None) -> str:
        fields = {"FirstName": "Test", "LastName": "Person", "Email": email,
                  "GA_Client_ID__c": client_id}  # fmt: skip
        return str(self.emu.add_record("Contact", fields, created_at))

    def add_deal(
        self, name: str, amount: float, person: str, created_at: datetime,
        closed_at: datetime | None, won: bool = True,
    ) -> str:  # fmt: skip
        tz = ZoneInfo(self.emu.record("Organization", self.emu.org_id)["TimeZoneSidKey"])
        stage = ("Closed Won" if won else "Closed Lost") if closed_at else "Qualification"
        day = (closed_at or created_at + timedelta(days=30)).astimezone(tz).date()
        fields = {"Name": name, "Amount": amount, "StageName": stage,
                  "CloseDate": day.isoformat(), "CurrencyIsoCode": "USD"}  # fmt: skip
        opportunity = str(self.emu.add_record("Opportunity", fields, created_at))
        role = {"OpportunityId": opportunity, "ContactId": person, "IsPrimary": True,
                "Role": "Decision Maker"}  # fmt: skip
        self.emu.add_record("OpportunityContactRole", role, created_at)
        return opportunity

    def clear_client_id(self, person: str) -> None:
        self.edit(person, GA_Client_ID__c=None)

    touch_object = "CL_Touchpoint__c"
    touch_fields = ("Occurred_At__c", "Channel__c", "Source__c", "Medium__c", "Campaign__c",
                    "Landing_Page__c", "Position__c", "Credit_Linear__c",
                    "Revenue_Linear__c")  # fmt: skip

    def touch_records(self) -> dict[str, dict[str, Any]]:
        return {
            str(r["Touchpoint_Key__c"]): {
                "fields": {f: r.get(f) for f in self.touch_fields},
                "links": {o: r.get(f"{o}__c") for o in ("Lead", "Contact", "Opportunity")},
            }
            for r in self.emu.records.get(self.touch_object, {}).values()
            if not r["IsDeleted"]
        }

    def touch_ids(self) -> dict[str, str]:
        return {
            str(r["Touchpoint_Key__c"]): rid
            for rid, r in self.emu.records.get(self.touch_object, {}).items()
            if not r["IsDeleted"]
        }

    def edit_touch(self, key: str, channel: str) -> None:
        self.emu.edit(self.touch_object, self.touch_ids()[key], Channel__c=channel)

    def mutations(self) -> list[Any]:
        return [
            r for r in self.emu.log
            if r.method in {"PATCH", "PUT", "DELETE"}
            or (r.method == "POST" and "/jobs/ingest" in r.path)
        ]  # fmt: skip

    def touch_writes(self) -> list[Any]:
        return [
            r for r in self.mutations()
            if self.touch_object in r.path
            or (r.method == "DELETE" and "/composite/sobjects" in r.path)
            or (r.method == "POST" and self.touch_object.encode() in r.body)
        ]  # fmt: skip


PROBES = {"hubspot": HubSpotProbe, "salesforce": SalesforceProbe}


@dataclass
class Loop:
    systems: DemoSystems
    workdir: Path
    probe: HubSpotProbe

    @property
    def crm(self) -> Any:
        return self.probe.emu

    @property
    def ga4(self) -> Any:
        return self.systems.emulators["ga4"]

    def context(self) -> RunContext:
        return build_context(load_config(self.systems.config_path))

    def sync(self, **kwargs: Any) -> tuple[RunContext, models.SyncRun]:
        ctx = self.context()
        for key, value in kwargs.items():
            setattr(ctx, key, value)
        try:
            return ctx, run_sync(ctx)
        finally:
            ctx.close()

    def writes(self) -> list[Any]:
        return self.probe.write_requests()

    def written_ids(self) -> set[str]:
        return {rid for batch in self.probe.batches() for rid in batch}

    def use_store(self, url: str) -> None:
        """Point the loop's config at another store (the PostgreSQL one of ``store_url``)."""
        path = self.systems.config_path
        config = yaml.safe_load(path.read_text())
        config["store"]["url"] = url
        path.write_text(yaml.safe_dump(config))

    def crm_state(self) -> dict[str, dict[str, Any]]:
        return {
            rid: {f: props.get(f) for f in self.probe.fields}
            for rid, props in self.probe.records().items()
        }


def start_loop(path: Path, crm: str, company: Company, touchpoint_records: bool = False) -> Loop:
    systems = start_demo(path, crm, company, touchpoint_records=touchpoint_records)
    return Loop(systems, path, PROBES[crm](systems.emulators[crm]))
