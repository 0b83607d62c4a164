"""SalesforceCrm against the emulator, through the real simple-salesforce client."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from simple_salesforce.api import Salesforce

from adapters._emulator import Request, Response, route
from adapters.salesforce.adapter import SalesforceCrm, SalesforceSettings
from adapters.salesforce.emulator import JOB, Emulator
from connector.kernel.errors import BudgetExhausted, ConfigError, TransientError
from connector.kernel.records import RecordUpdate, WriteResult

MakeAdapter = Callable[..., SalesforceCrm]


def _ids(emu: Emulator, sobject: str) -> list[str]:
    return sorted(emu.records[sobject])


def _converted_lead(emu: Emulator) -> tuple[str, str]:
    lead = next(r for r in emu.records["Lead"].values() if r["IsConverted"])
    return lead["Id"], lead["ConvertedContactId"]


# -- reads ---------------------------------------------------------------------------------
def test_contacts_reads_leads_and_contacts(emu: Emulator, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter()
    people = list(adapter.contacts(None, ["Email", "GA_Client_ID__c", "No_Such_Field__c"]))
    assert [p.object for p in people] == ["Lead"] * 30 + ["Contact"] * 30
    assert len({p.crm_id for p in people}) == 60
    assert all(p.created_at.tzinfo is UTC and p.updated_at.tzinfo is UTC for p in people)
    contact = next(p for p in people if p.object == "Contact")
    assert contact.account_id == emu.record("Contact", contact.crm_id)["AccountId"]
    assert contact.properties == {
        "Email": "contact00@example.com",
        "GA_Client_ID__c": "1000000000.1700000000",
        "No_Such_Field__c": None,
    }
    lead_id, contact_id = _converted_lead(emu)
    converted = next(p for p in people if p.crm_id == lead_id)
    assert converted.merged_into == contact_id
    assert sum(p.merged_into is not None for p in people) == 5


def test_contacts_since_uses_system_modstamp(emu: Emulator, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(person_objects=["Contact"])
    contact = _ids(emu, "Contact")[3]
    emu.edit("Contact", contact, Title="VP Marketing")
    since = datetime.now(UTC) - timedelta(minutes=5)
    emu.clear_log()
    changed = list(adapter.contacts(since, ["Title"]))
    assert [(c.crm_id, c.properties["Title"]) for c in changed] == [(contact, "VP Marketing")]
    (query,) = emu.requests("GET", "/query")
    soql = query.arg("q") or ""
    assert f"WHERE SystemModstamp >= {since.strftime('%Y-%m-%dT%H:%M:%SZ')}" in soql
    assert soql.endswith("ORDER BY SystemModstamp, Id")


def test_contacts_page_through_next_records_url(emu: Emulator, make_adapter: MakeAdapter) -> None:
    emu.page_size = 4
    adapter = make_adapter(page_size=200)
    people = list(adapter.contacts(None, ["Email"]))
    assert len(people) == 60 and len({p.crm_id for p in people}) == 60
    pages = emu.requests("GET", "/query")
    assert len(pages) == 2 * 8  # 30 records in pages of 4, for Lead and Contact
    assert all(p.headers.get("sforce-query-options") == "batchSize=200" for p in pages)
    assert sum("/query/01g" in p.path for p in pages) == 2 * 7


def _opportunity_with_two_roles(emu: Emulator) -> str:
    counts: dict[str, int] = {}
    for role in emu.records["OpportunityContactRole"].values():
        counts[role["OpportunityId"]] = counts.get(role["OpportunityId"], 0) + 1
    return next(opp for opp, n in counts.items() if n == 2)


@pytest.mark.parametrize("roles", ["primary", "all"])
def test_deals_carry_buyers_from_contact_roles(
    emu: Emulator, make_adapter: MakeAdapter, roles: str
) -> None:
    deals = {d.crm_id: d for d in make_adapter(contact_roles=roles).deals(None)}
    assert len(deals) == 30
    opp = _opportunity_with_two_roles(emu)
    by_role = {
        r["IsPrimary"]: r["ContactId"]
        for r in emu.records["OpportunityContactRole"].values()
        if r["OpportunityId"] == opp
    }
    expected = (by_role[True],) if roles == "primary" else (by_role[True], by_role[False])
    assert deals[opp].contact_ids == expected
    queries = [r.arg("q") or "" for r in emu.requests("GET", "/query")]
    role_queries = [q for q in queries if "FROM OpportunityContactRole" in q]
    assert role_queries and all("OpportunityId IN (" in q for q in role_queries)
    assert all(("IsPrimary = TRUE" in q) == (roles == "primary") for q in role_queries)


def test_deal_fields(emu: Emulator, make_adapter: MakeAdapter) -> None:
    deals = list(make_adapter().deals(None))
    won = next(d for d in deals if d.stage == "Closed Won")
    raw = emu.record("Opportunity", won.crm_id)
    assert won.is_won and won.is_closed and won.amount == raw["Amount"]
    # CloseDate is a day in the org's time zone (the emulator's: America/Los_Angeles)
    assert won.close_date == date.fromisoformat(raw["CloseDate"])
    la = ZoneInfo("America/Los_Angeles")
    assert won.closed_at == datetime.combine(won.close_date, time.min, la).astimezone(UTC)
    assert won.stage_label == "Closed Won" and won.stage_order == 6  # StageName picklist order
    assert won.account_id == raw["AccountId"] and won.currency is None
    open_deal = next(d for d in deals if d.stage == "Prospecting")
    assert not open_deal.is_closed and open_deal.closed_at is None


def test_the_orgs_time_zone_dates_close_days(
    emu: Emulator, make_adapter: MakeAdapter, sf: Salesforce
) -> None:
    # What the org says, through the real client: its one Organization record.
    org = sf.query("SELECT Id, TimeZoneSidKey FROM Organization")["records"]
    assert [(r["Id"], r["TimeZoneSidKey"]) for r in org] == [(emu.org_id, "America/Los_Angeles")]
    emu.set_time_zone("Asia/Tokyo")
    adapter = make_adapter()
    assert adapter.time_zone() == "Asia/Tokyo"
    won = next(d for d in adapter.deals(None) if d.is_won)
    assert won.close_date is not None
    tokyo = datetime.combine(won.close_date, time.min, ZoneInfo("Asia/Tokyo"))
    assert won.closed_at == tokyo.astimezone(UTC)
    assert len(emu.requests("GET", "/query")) == 1 + 1 + 2  # Organization once, deals, roles
    # An admin may name the zone instead (an org that refuses the query): nothing is asked.
    emu.clear_log()
    named = make_adapter(time_zone="Europe/Berlin")
    assert named.time_zone() == "Europe/Berlin"
    assert not [r for r in emu.requests("GET", "/query") if "Organization" in (r.arg("q") or "")]
    with pytest.raises(ValidationError, match="unknown time zone"):
        make_adapter(time_zone="Mars/Olympus")
    # A user who may not see Organization is told what to do, not given a stack trace.
    del emu.schema["Organization"]
    with pytest.raises(ConfigError, match="crm.settings.time_zone"):
        make_adapter().time_zone()


def test_deals_read_currency_when_the_org_has_several(
    emu: Emulator, make_adapter: MakeAdapter
) -> None:
    emu.enable_multicurrency()
    opp = _ids(emu, "Opportunity")[0]
    emu.edit("Opportunity", opp, CurrencyIsoCode="EUR")
    deals = {d.crm_id: d for d in make_adapter().deals(None)}
    assert deals[opp].currency == "EUR"
    assert {d.currency for d in deals.values()} == {"EUR", "USD"}


def test_read_values_in_url_sized_chunks(emu: Emulator, make_adapter: MakeAdapter) -> None:
    contacts = _ids(emu, "Contact")
    unknown = [emu.new_id("003") for _ in range(1200)]  # ids that do not exist
    adapter = make_adapter()
    emu.clear_log()
    values = adapter.read_values(
        "Contact", [contacts[0][:15], *contacts[1:3], *unknown], ["LeadSource", "Touch_Count__c"]
    )
    assert set(values) == {contacts[0][:15], contacts[1], contacts[2]}  # keyed as asked
    assert values[contacts[1]] == {"LeadSource": "Paid Search", "Touch_Count__c": None}
    queries = emu.requests("GET", "/query")
    assert len(queries) >= 2  # 1,203 ids do not fit one URL
    assert all(len(q.arg("q") or "") < 16_000 for q in queries)


# -- describe ------------------------------------------------------------------------------
def test_describe_fields_maps_types_and_picklists(make_adapter: MakeAdapter) -> None:
    fields = make_adapter().describe_fields("Lead")
    source = fields["LeadSource"]
    assert (
        source.type == "enumeration"
        and source.restricted
        and "Paid Social" in (source.picklist or ())
    )
    assert fields["Touch_Count__c"].type == "number"
    assert fields["First_Touch_Date__c"].type == "datetime"
    assert fields["IsConverted"].type == "bool" and not fields["IsConverted"].updateable
    assert fields["UTM_Source__c"].length == 255 and fields["UTM_Source__c"].picklist is None


def test_create_fields_asks_an_admin(make_adapter: MakeAdapter) -> None:
    from connector.kernel.records import FieldSpec

    with pytest.raises(ConfigError) as caught:
        make_adapter().create_fields("Lead", [FieldSpec("Channel__c", "string")], "closedloop")
    assert "Channel__c" in str(caught.value) and "admin" in str(caught.value)


# -- writes --------------------------------------------------------------------------------
def test_collections_write_with_partial_failure(emu: Emulator, make_adapter: MakeAdapter) -> None:
    contacts = _ids(emu, "Contact")
    emu.delete("Contact", contacts[2])
    emu.edit("Contact", contacts[1], UTM_Source__c="google")
    batches: list[list[WriteResult]] = []
    results = make_adapter().write(
        "Contact",
        [
            RecordUpdate(contacts[0], {"LeadSource": "Paid Search", "Touch_Count__c": "3"}),
            RecordUpdate(contacts[1], {"UTM_Source__c": None, "First_Touch_Date__c": ""}),
            RecordUpdate(contacts[2], {"LeadSource": "Web"}),
            RecordUpdate(contacts[3], {"LeadSource": "Carrier pigeon"}),
            RecordUpdate(contacts[4], {"Touch_Count__c": "many"}),
        ],
        on_batch=batches.append,
    )
    assert [r.crm_id for r in results] == contacts[:5]
    assert [r.ok for r in results] == [True, True, False, False, False]
    assert results[2].error.startswith("ENTITY_IS_DELETED")
    assert results[3].error.startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    assert "not a number" in results[4].error
    assert emu.record("Contact", contacts[0])["Touch_Count__c"] == 3.0
    assert emu.record("Contact", contacts[1])["UTM_Source__c"] is None  # cleared
    (patch,) = emu.requests("PATCH", "/composite/sobjects")
    sent = patch.json()
    assert sent["allOrNone"] is False
    assert sent["records"][0] == {
        "attributes": {"type": "Contact"},
        "id": contacts[0],
        "LeadSource": "Paid Search",
        "Touch_Count__c": 3.0,  # a number on the wire, not "3"
    }
    assert sent["records"][1]["UTM_Source__c"] is None
    assert len(sent["records"]) == 4  # the unconvertible record was never sent
    assert sorted(r.crm_id for b in batches for r in b) == sorted(contacts[:5])


def test_converted_lead_write_fails_per_record(emu: Emulator, make_adapter: MakeAdapter) -> None:
    lead, _ = _converted_lead(emu)
    (result,) = make_adapter().write("Lead", [RecordUpdate(lead, {"UTM_Source__c": "x"})])
    assert not result.ok and result.error.startswith("CANNOT_UPDATE_CONVERTED_LEAD")


def test_collections_write_in_chunks_of_200(emu: Emulator, make_adapter: MakeAdapter) -> None:
    for i in range(420):
        emu.add_record("Contact", {"LastName": f"Bulk{i}"})
    contacts = _ids(emu, "Contact")[:450]
    sizes: list[int] = []
    results = make_adapter().write(
        "Contact",
        [RecordUpdate(c, {"UTM_Medium__c": "cpc"}) for c in contacts],
        on_batch=lambda batch: sizes.append(len(batch)),
    )
    assert sizes == [200, 200, 50] and all(r.ok for r in results)
    assert len(emu.requests("PATCH", "/composite/sobjects")) == 3


def test_bulk_write_above_threshold(emu: Emulator, make_adapter: MakeAdapter) -> None:
    contacts = _ids(emu, "Contact")
    emu.edit("Contact", contacts[0], UTM_Source__c="google")
    batches: list[list[WriteResult]] = []
    results = make_adapter(bulk_threshold=2).write(
        "Contact",
        [
            RecordUpdate(contacts[0], {"UTM_Source__c": None, "Touch_Count__c": "7"}),
            RecordUpdate(contacts[1], {"LeadSource": "Carrier pigeon"}),
            RecordUpdate(contacts[2], {"LeadSource": "Trade Show"}),
        ],
        on_batch=batches.append,
    )
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: Lead Source: bad value for restricted picklist "
        "field: Carrier pigeon"
    )
    assert emu.record("Contact", contacts[0])["UTM_Source__c"] is None  # cleared with #N/A
    assert emu.record("Contact", contacts[0])["Touch_Count__c"] == 7.0
    assert emu.record("Contact", contacts[2])["LeadSource"] == "Trade Show"
    assert len(batches) == 1 and not emu.requests("PATCH", "/composite")
    (upload,) = emu.requests("PUT", "/batches")
    rows = list(csv.reader(io.StringIO(upload.body.decode())))
    assert rows[0] == ["Id", "LeadSource", "Touch_Count__c", "UTM_Source__c"]
    assert rows[1] == [contacts[0], "", "7.0", "#N/A"]  # empty cell = leave unchanged
    polls = emu.requests("GET", "/jobs/ingest/")
    assert [p.path.rsplit("/", 1)[-1] for p in polls][-1] == "failedResults"
    (job,) = emu.jobs.values()
    assert job.state == "JobComplete"


class FlakyPolls(Emulator):
    """The first poll of a bulk job fails with 503 (the client alone would abort the job)."""

    failing_polls = 1

    @route("GET", JOB)
    def get_job(self, req: Request) -> Response:
        if self.failing_polls:
            self.failing_polls -= 1
            return self.server_error_response(req, 503)
        return super().get_job(req)


def test_bulk_write_survives_a_failed_poll(make_adapter: MakeAdapter) -> None:
    with FlakyPolls() as emu:
        emu.seed_sample()
        contacts = _ids(emu, "Contact")[:3]
        results = make_adapter(emu, bulk_threshold=0).write(
            "Contact", [RecordUpdate(c, {"UTM_Campaign__c": "q4"}) for c in contacts]
        )
        assert all(r.ok for r in results)
        assert not emu.requests("GET", "/successfulResults")  # all processed, none failed
        (job,) = emu.jobs.values()
        assert job.state == "JobComplete"
        polls = [r for r in emu.requests("GET", "/jobs/ingest/") if r.path.endswith(job.id)]
        assert len(polls) == 3  # 503, InProgress, JobComplete


def test_failed_bulk_job_fails_every_record(emu: Emulator, make_adapter: MakeAdapter) -> None:
    contacts = _ids(emu, "Contact")[:2]
    results = make_adapter(bulk_threshold=0).write(
        "Contact", [RecordUpdate(c, {"Nope__c": "x"}) for c in contacts]
    )
    assert [r.ok for r in results] == [False, False]
    assert "Field name not found : Nope__c" in results[0].error


def test_write_nothing_sends_nothing(emu: Emulator, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter()
    assert adapter.write("Contact", []) == []
    assert adapter.api_calls() == 0 and not emu.log


# -- API budget and errors -----------------------------------------------------------------
def test_budget_stops_before_exceeding_the_share(make_adapter: MakeAdapter) -> None:
    with Emulator(daily_limit=40) as emu:
        emu.seed_sample()
        emu.page_size = 2
        adapter = make_adapter(emu, api_budget_share=0.25)
        with pytest.raises(BudgetExhausted) as caught:
            list(adapter.contacts(None, ["Email"]))
        assert emu.api_used == 10 and adapter.api_calls() == 10
        assert "10 requests" in str(caught.value) and "40 daily" in str(caught.value)


def test_budget_leaves_the_org_its_last_request(make_adapter: MakeAdapter) -> None:
    with Emulator(daily_limit=100) as emu:
        emu.seed_sample()
        emu.page_size = 2
        emu.api_used = 97
        with pytest.raises(BudgetExhausted, match="1 of its 100"):
            list(make_adapter(emu, api_budget_share=1.0).contacts(None, ["Email"]))
        assert emu.api_used == 99


def test_request_limit_exceeded_is_budget_not_retried(
    emu: Emulator, make_adapter: MakeAdapter
) -> None:
    emu.api_used = emu.daily_limit
    with pytest.raises(BudgetExhausted, match="daily API limit"):
        list(make_adapter().contacts(None, ["Email"]))
    assert len(emu.log) == 1


def test_permission_403_is_a_config_error(emu: Emulator, make_adapter: MakeAdapter) -> None:
    emu.disable_api()
    with pytest.raises(ConfigError, match="API_CURRENTLY_DISABLED") as caught:
        make_adapter().describe_fields("Lead")
    assert "permission" in str(caught.value)
    assert len(emu.log) == 1


@pytest.mark.parametrize("fault", ["503", "500", "429", "drop"])
def test_transient_faults_are_retried(emu: Emulator, make_adapter: MakeAdapter, fault: str) -> None:
    adapter = make_adapter()
    adapter.describe_fields("Lead")  # connected; the next query meets the faults
    emu.inject(fault, count=2, path_prefix="/services/data/v59.0/query")
    people = list(adapter.contacts(None, ["Email"]))
    assert len(people) == 60
    assert len(emu.requests("GET", "/query")) == 2 + 2


def test_persistent_5xx_gives_up_as_transient(emu: Emulator, make_adapter: MakeAdapter) -> None:
    emu.inject("503", count=100, path_prefix="/services/data/v59.0/limits")
    with pytest.raises(TransientError, match="503"):
        make_adapter().describe_fields("Lead")
    assert len(emu.requests("GET", "/limits")) == 6


def test_expired_session_id_is_a_config_error(emu: Emulator, make_adapter: MakeAdapter) -> None:
    settings = emu.adapter_settings(valid_token=False)
    with pytest.raises(ConfigError, match="session_id") as caught:
        make_adapter(**settings).describe_fields("Lead")
    assert settings["session_id"] not in str(caught.value)
    assert len(emu.log) == 1


def test_session_id_only_config_does_not_relogin(emu: Emulator, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter()
    adapter.describe_fields("Lead")
    emu.expire_session()
    with pytest.raises(ConfigError, match="fresh session_id"):
        list(adapter.contacts(None, []))
    assert emu.logins == 0


# -- settings ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "none is complete"),
        ({"username": "u", "password": "p"}, "none is complete"),
        (
            {"session_id": "s", "instance_url": "https://x.my.salesforce.com", "username": "u",
             "password": "p", "security_token": "t"},
            "got session_id and username",
        ),
        ({"session_id": "s"}, "session_id needs instance_url"),
        ({"session_id": "s", "instance_url": "https://x", "person_objects": ["Deal"]}, "Lead"),
        ({"session_id": "s", "instance_url": "https://x", "api_version": "v59.0"}, "pattern"),
    ],
)  # fmt: skip
def test_settings_validation(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SalesforceSettings(**settings)


def test_plain_http_needs_allow_http(emu: Emulator, make_adapter: MakeAdapter) -> None:
    with pytest.raises(ConfigError, match="allow_http"):
        make_adapter(allow_http=False).describe_fields("Lead")
    assert not emu.log


def test_secrets_stay_out_of_settings_repr() -> None:
    settings = SalesforceSettings(
        session_id="00Dsecret!token", instance_url="https://acme.my.salesforce.com"
    )
    assert "00Dsecret" not in repr(settings) and "00Dsecret" not in json.dumps(
        settings.model_dump(mode="json")
    )


@pytest.mark.parametrize(("threshold", "expected"), [(10_000, 5), (0, 5)])
def test_api_calls_per_thousand_updates(
    make_adapter: MakeAdapter, threshold: int, expected: int
) -> None:
    """Collections: 1,000 / 200 = 5 calls. Bulk: create, upload, close, 2 polls (more on a real
    org, one per bulk_poll_interval) and no result download when nothing failed."""
    with Emulator() as emu:
        emu.add_field("Contact", "UTM_Source__c")
        ids = [emu.add_record("Contact", {"LastName": f"P{i}"}) for i in range(1000)]
        adapter = make_adapter(emu, bulk_threshold=threshold)
        adapter.describe_fields("Contact")  # limits + describe, once per run
        before = adapter.api_calls()
        results = adapter.write(
            "Contact", [RecordUpdate(i, {"UTM_Source__c": "google"}) for i in ids]
        )
        assert all(r.ok for r in results) and len(results) == 1000
        assert adapter.api_calls() - before == expected == len(emu.log) - before
