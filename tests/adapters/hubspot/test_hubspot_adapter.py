"""HubSpotCrm through the real hubspot-api-client against the local HubSpot emulator."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import connector.kernel.retry
from adapters.hubspot.adapter import HubSpotCrm, HubSpotSettings
from adapters.hubspot.emulator import SAMPLE_DAY, Emulator
from connector.kernel.errors import BudgetExhausted, ConfigError, TransientError
from connector.kernel.records import FieldSpec, RecordUpdate, WriteResult

SINCE = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connector.kernel.retry, "BACKOFF_SCALE", 0.01)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as server:
        yield server


def adapter(emu: Emulator, **overrides: Any) -> HubSpotCrm:
    # Full share and a fast search limiter: the emulator's defaults do not limit search.
    settings = {
        **emu.adapter_settings(),
        "rate_limit_share": 1.0,
        "search_per_second": 1000,
        **overrides,
    }
    return HubSpotCrm(HubSpotSettings(**settings))


@pytest.fixture
def crm(emu: Emulator) -> Iterator[HubSpotCrm]:
    with adapter(emu) as hubspot:
        yield hubspot


def add_contacts(emu: Emulator, count: int, modified: datetime, per_stamp: int = 1) -> list[str]:
    """``count`` contacts, ``per_stamp`` of them sharing each modification millisecond."""
    return [
        emu.add_contact(
            {"email": f"c{i}@example.com", "utm_source": "google"},
            created_at=modified - timedelta(days=3),
            updated_at=modified + timedelta(milliseconds=i // per_stamp),
        )
        for i in range(count)
    ]


def search_bodies(emu: Emulator) -> list[dict[str, Any]]:
    return [r.json() for r in emu.requests("POST", "/search")]


# -- reads ------------------------------------------------------------------------------------
def test_full_read_pages_through_the_list_endpoint(emu: Emulator, crm: HubSpotCrm) -> None:
    ids = add_contacts(emu, 250, SINCE)

    records = list(crm.contacts(None, ["email", "utm_source", "ga_client_id"]))

    assert [r.crm_id for r in records] == ids
    assert len(emu.requests("GET", "/crm/v3/objects/contacts")) == 3
    assert records[0].properties == {
        "email": "c0@example.com",
        "utm_source": "google",
        "ga_client_id": None,
    }
    assert all(r.created_at.tzinfo == UTC and r.updated_at.tzinfo == UTC for r in records)
    assert records[7].updated_at == SINCE + timedelta(milliseconds=7)
    assert crm.api_calls() == 3


def test_incremental_read_walks_past_the_10000_search_window(
    emu: Emulator, crm: HubSpotCrm
) -> None:
    add_contacts(emu, 40, SINCE - timedelta(days=2))  # unchanged since the cursor
    changed = add_contacts(emu, 10_300, SINCE + timedelta(hours=1), per_stamp=3)

    records = list(crm.contacts(SINCE, ["email"]))

    read = [r.crm_id for r in records]
    assert len(read) == len(set(read)) == 10_300
    assert set(read) == set(changed)
    bodies = search_bodies(emu)
    assert all(int(b.get("after", 0)) + b["limit"] <= 10_000 for b in bodies)
    restarts = [b for b in bodies if "after" not in b]
    assert len(restarts) == 2
    floors = [int(b["filterGroups"][0]["filters"][0]["value"]) for b in restarts]
    assert floors[0] == int(SINCE.timestamp() * 1000) < floors[1]
    assert [r.updated_at for r in records] == sorted(r.updated_at for r in records)


def test_a_full_window_at_one_millisecond_is_read_by_id(emu: Emulator, crm: HubSpotCrm) -> None:
    same = add_contacts(emu, 10_050, SINCE + timedelta(hours=1), per_stamp=20_000)
    later = add_contacts(emu, 5, SINCE + timedelta(hours=2))

    read = [r.crm_id for r in crm.contacts(SINCE, ["email"])]

    assert len(read) == len(set(read)) == 10_055
    assert set(read) == set(same) | set(later)
    assert read[-5:] == later


def test_incremental_read_returns_only_changed_records(emu: Emulator, crm: HubSpotCrm) -> None:
    ids = add_contacts(emu, 20, SAMPLE_DAY - timedelta(days=60))
    old = ids[4]
    emu.edit("contacts", old, utm_source="newsletter")

    since = datetime.now(UTC) - timedelta(minutes=1)
    records = list(crm.contacts(since, ["email", "utm_source"]))

    assert [(r.crm_id, r.properties["utm_source"]) for r in records] == [(old, "newsletter")]
    assert records[0].updated_at >= since


def test_deals_carry_amounts_stages_and_every_buyer(emu: Emulator, crm: HubSpotCrm) -> None:
    buyers = add_contacts(emu, 3, SINCE)
    won = emu.add_deal(
        {"dealname": "Big", "amount": "1200.50", "dealstage": "closedwon",
         "deal_currency_code": "EUR", "closedate": "2026-11-10T12:00:00.000Z"},
        SINCE, buyers,
    )  # fmt: skip
    open_deal = emu.add_deal(
        {"dealname": "Open", "amount": "", "dealstage": "qualifiedtobuy",
         "closedate": "2026-12-24T00:00:00.000Z"},
        SINCE, [buyers[0]],
    )  # fmt: skip
    lone = emu.add_deal({"dealname": "Lone", "amount": "n/a", "dealstage": "closedlost"}, SINCE, [])
    emu.association_page_size = 2  # force per-deal association paging

    deals = {d.crm_id: d for d in crm.deals(None)}

    assert deals[won].contact_ids == tuple(buyers)
    assert (deals[won].amount, deals[won].currency, deals[won].stage) == (
        1200.5,
        "EUR",
        "closedwon",
    )
    assert deals[won].is_won and deals[won].is_closed
    assert deals[won].closed_at == datetime(2026, 11, 10, 12, tzinfo=UTC)
    assert deals[open_deal].amount is None and deals[open_deal].currency is None
    assert not deals[open_deal].is_closed and deals[open_deal].closed_at is None
    assert deals[open_deal].contact_ids == (buyers[0],)
    assert deals[lone].amount is None and deals[lone].is_closed and not deals[lone].is_won
    assert deals[lone].contact_ids == ()
    association_calls = emu.requests("POST", "/crm/v4/associations/deals/contacts/batch/read")
    assert len(association_calls) == 2
    assert association_calls[1].json()["inputs"] == [{"id": won, "after": "2"}]


def test_close_dates_and_stage_labels_as_the_portal_shows_them(
    emu: Emulator, crm: HubSpotCrm
) -> None:
    emu.time_zone = "America/Los_Angeles"
    buyer = emu.add_contact({"email": "b@example.com"}, created_at=SINCE)
    # 03:00 UTC on the 10th is still the 9th in Los Angeles
    won = emu.add_deal(
        {"dealname": "Won", "amount": "100", "dealstage": "closedwon",
         "closedate": "2026-11-10T03:00:00.000Z"}, created_at=SINCE, contact_ids=[buyer],
    )  # fmt: skip
    emu.add_pipeline("renewals", "Renewals", [("901", "Renewal due", 0.5), ("902", "Renewed", 1.0)])
    renewal = emu.add_deal(
        {"dealname": "Renewal", "amount": "50", "dealstage": "901"}, created_at=SINCE,
        contact_ids=[buyer],
    )  # fmt: skip
    deals = {d.crm_id: d for d in crm.deals(None)}

    assert crm.time_zone() == "America/Los_Angeles"
    assert deals[won].close_date == date(2026, 11, 9)
    assert deals[won].closed_at == datetime(2026, 11, 10, 3, tzinfo=UTC)
    # two pipelines: each label names its pipeline; order follows the pipelines
    assert (deals[won].stage, deals[won].stage_label) == ("closedwon", "Sales Pipeline: Closed Won")
    assert deals[renewal].stage_label == "Renewals: Renewal due"
    assert deals[won].stage_order < deals[renewal].stage_order
    details = emu.requests("GET", "/account-info/v3/details")
    assert len(details) == 1 and details[0].headers["authorization"].startswith("Bearer ")
    assert HubSpotCrm(HubSpotSettings(**emu.adapter_settings(), time_zone="UTC")).time_zone() == (
        "UTC"
    )  # named in the settings: nothing is asked
    assert len(emu.requests("GET", "/account-info/v3/details")) == 1


def test_account_details_are_hubspots_shape(emu: Emulator) -> None:
    import requests

    emu.time_zone = "US/Eastern"
    answer = requests.get(
        f"{emu.url}/account-info/v3/details",
        headers={"Authorization": f"Bearer {emu.access_token}"},
        timeout=10,
    )
    body = answer.json()
    assert answer.status_code == 200
    assert body["timeZone"] == "US/Eastern" and body["utcOffset"] in {"-05:00", "-04:00"}
    assert body["utcOffsetMilliseconds"] in {-5 * 3_600_000, -4 * 3_600_000}
    assert {"portalId", "accountType", "companyCurrency", "uiDomain"} <= set(body)
    refused = requests.get(f"{emu.url}/account-info/v3/details", timeout=10)
    assert refused.status_code == 401


def test_deal_associations_are_read_in_chunks_of_1000(emu: Emulator, crm: HubSpotCrm) -> None:
    buyer = emu.add_contact({"email": "b@example.com"}, SINCE)
    deal_ids = [
        emu.add_deal({"dealname": f"D{i}", "dealstage": "closedwon"}, SINCE, [buyer])
        for i in range(1_050)
    ]

    deals = list(crm.deals(SINCE - timedelta(days=1)))

    assert [d.crm_id for d in deals] == deal_ids
    assert all(d.contact_ids == (buyer,) for d in deals)
    sizes = [len(r.json()["inputs"]) for r in emu.requests("POST", "/crm/v4/associations")]
    assert sizes == [1000, 50]


def test_read_values_batches_and_omits_unknown_ids(emu: Emulator, crm: HubSpotCrm) -> None:
    ids = add_contacts(emu, 150, SINCE)
    emu.edit("contacts", ids[3], lifecyclestage="lead")

    values = crm.read_values("contacts", [*ids, "999999"], ["lifecyclestage", "email"])

    assert set(values) == set(ids)
    assert values[ids[3]] == {"lifecyclestage": "lead", "email": "c3@example.com"}
    assert values[ids[4]]["lifecyclestage"] is None
    reads = emu.requests("POST", "/crm/v3/objects/contacts/batch/read")
    assert [len(r.json()["inputs"]) for r in reads] == [100, 51]
    assert reads[0].query["archived"] == ["False"]


# -- fields -------------------------------------------------------------------------------------
def test_describe_fields_maps_hubspot_types(crm: HubSpotCrm) -> None:
    contacts = crm.describe_fields("contacts")
    deals = crm.describe_fields("deals")

    stage = contacts["lifecyclestage"]
    assert stage.type == "enumeration" and stage.restricted and "customer" in (stage.picklist or ())
    assert not contacts["hs_analytics_source"].updateable
    assert contacts["utm_source"].type == "string" and contacts["utm_source"].updateable
    assert contacts["createdate"].type == "datetime" and not contacts["createdate"].updateable
    assert deals["amount"].type == "number"
    assert deals["hs_is_closed_won"].type == "bool"
    assert deals["closedate"].label == "Close Date"


def test_create_fields_creates_the_group_and_properties_once(
    emu: Emulator, crm: HubSpotCrm
) -> None:
    fields = [
        FieldSpec("cl_first_touch_channel", "enumeration", picklist=("Paid Search", "Email"),
                  label="First touch channel"),
        FieldSpec("cl_first_touch_at", "datetime", label="First touch at"),
        FieldSpec("cl_touches", "number", label="Touches"),
        FieldSpec("utm_source", "string"),  # exists already
    ]  # fmt: skip

    crm.create_fields("contacts", fields, "closedloop")

    assert "closedloop" in emu.groups["contacts"]
    created = [
        r.json()
        for r in emu.requests("POST", "/crm/v3/properties/contacts")
        if "groups" not in r.path
    ]
    assert [(b["name"], b["type"], b["fieldType"], b["groupName"]) for b in created] == [
        ("cl_first_touch_channel", "enumeration", "select", "closedloop"),
        ("cl_first_touch_at", "datetime", "date", "closedloop"),
        ("cl_touches", "number", "number", "closedloop"),
    ]
    described = crm.describe_fields("contacts")
    assert described["cl_first_touch_channel"].picklist == ("Paid Search", "Email")
    assert described["cl_first_touch_channel"].label == "First touch channel"

    emu.clear_log()
    crm.create_fields("contacts", fields, "closedloop")
    assert emu.requests("POST") == []


def test_a_property_created_meanwhile_is_no_error(emu: Emulator, crm: HubSpotCrm) -> None:
    """A killed run's create request may land after the re-run described the properties."""

    def created_by_a_late_request(req: Any) -> None:
        if req.method == "POST" and req.path.endswith("/properties/contacts"):
            emu.on_request = None
            emu.add_property("contacts", "cl_touches", "number", "number", group_name="closedloop")

    emu.on_request = created_by_a_late_request
    crm.create_fields("contacts", [FieldSpec("cl_touches", "number")], "closedloop")
    assert crm.describe_fields("contacts")["cl_touches"].type == "number"


def test_create_fields_refuses_an_enumeration_without_values(crm: HubSpotCrm) -> None:
    with pytest.raises(ConfigError, match="enumeration needs its values"):
        crm.create_fields("contacts", [FieldSpec("cl_channel", "enumeration")], "closedloop")


# -- writes -------------------------------------------------------------------------------------
def test_write_reports_per_record_failures_of_a_207(emu: Emulator, crm: HubSpotCrm) -> None:
    ok, deleted, bad_option, read_only, unknown = add_contacts(emu, 5, SINCE)
    emu.delete_contact(deleted)
    batches: list[list[WriteResult]] = []

    results = crm.write(
        "contacts",
        [
            RecordUpdate(ok, {"lifecyclestage": "customer", "utm_source": None}),
            RecordUpdate(deleted, {"lifecyclestage": "lead"}),
            RecordUpdate(bad_option, {"lifecyclestage": "Customer!"}),
            RecordUpdate(read_only, {"hs_analytics_source": "OFFLINE"}),
            RecordUpdate(unknown, {"no_such_field": "x"}),
            RecordUpdate("123456789", {"lifecyclestage": "lead"}),
        ],
        on_batch=batches.append,
    )

    by_id = {r.crm_id: r for r in results}
    assert by_id[ok] == WriteResult(ok, ok=True)
    assert "OBJECT_NOT_FOUND" in by_id[deleted].error and not by_id[deleted].ok
    assert "OBJECT_NOT_FOUND" in by_id["123456789"].error
    assert (
        "INVALID_OPTION" in by_id[bad_option].error and "lifecyclestage" in by_id[bad_option].error
    )
    assert "hs_analytics_source" in by_id[read_only].error and not by_id[read_only].ok
    assert "no_such_field" in by_id[unknown].error and not by_id[unknown].ok
    assert batches == [results]
    assert emu.contact(ok)["lifecyclestage"] == "customer"
    assert emu.contact(ok)["utm_source"] == ""  # None clears the property
    assert emu.contact(bad_option)["lifecyclestage"] is None


def test_write_sends_batches_of_100_and_survives_a_rejected_batch(
    emu: Emulator, crm: HubSpotCrm
) -> None:
    ids = add_contacts(emu, 149, SINCE)
    updates = [RecordUpdate(i, {"utm_campaign": "q4"}) for i in ids]
    updates.insert(50, RecordUpdate(ids[0], {"utm_campaign": "dup"}))  # 400 for the first batch
    batches: list[list[WriteResult]] = []

    results = crm.write("contacts", updates, on_batch=batches.append)

    assert [len(b) for b in batches] == [100, 50]
    assert all(not r.ok and "Duplicate IDs" in r.error for r in batches[0])
    assert all(r.ok for r in batches[1])
    assert len(results) == 150
    assert emu.contact(ids[0])["utm_campaign"] is None
    assert emu.contact(ids[-1])["utm_campaign"] == "q4"
    assert len(emu.requests("POST", "/batch/update")) == 2


# -- errors, retries, limits ------------------------------------------------------------------
def test_wrong_token_is_a_config_error_that_does_not_leak_it(emu: Emulator) -> None:
    settings = emu.adapter_settings(valid_token=False)
    token = settings["access_token"]
    with HubSpotCrm(HubSpotSettings(**settings)) as crm:
        with pytest.raises(ConfigError, match="access token") as caught:
            list(crm.contacts(None, ["email"]))
        assert crm.api_calls() == 1  # not retried
    shown = "".join(traceback.format_exception(caught.value))
    assert token not in shown
    assert token not in repr(HubSpotSettings(**settings))


def test_429_burst_503_and_dropped_connection_are_retried(emu: Emulator, crm: HubSpotCrm) -> None:
    ids = add_contacts(emu, 120, SINCE)
    emu.inject("429", 2, "/crm/v3/objects/contacts")
    emu.inject("503", 2, "/crm/v3/objects/contacts")
    emu.inject("drop", 1, "/crm/v3/objects/contacts")  # 5 failures: one short of giving up

    read = [r.crm_id for r in crm.contacts(None, ["email"])]

    assert read == ids
    assert crm.api_calls() == 2 + 5
    assert len(emu.requests("GET", "/crm/v3/objects/contacts")) == 7


def test_search_429_is_retried_after_about_a_second(emu: Emulator, crm: HubSpotCrm) -> None:
    add_contacts(emu, 3, SINCE + timedelta(hours=1))
    emu.inject("429", connector.kernel.retry.MAX_ATTEMPTS, "/crm/v3/objects/contacts/search")

    with pytest.raises(TransientError) as caught:
        list(crm.contacts(SINCE, ["email"]))

    assert caught.value.retry_after == 1.0
    assert "SECONDLY" in str(caught.value)
    assert crm.api_calls() == connector.kernel.retry.MAX_ATTEMPTS


def test_daily_limit_stops_the_run(crm: HubSpotCrm, emu: Emulator) -> None:
    emu.daily_limit = 0
    with pytest.raises(BudgetExhausted, match="daily"):
        crm.describe_fields("contacts")
    assert crm.api_calls() == 1


def test_limiter_waits_when_hubspot_reports_no_calls_left() -> None:
    with Emulator(rate_limit=(3, 1.0)) as emu, adapter(emu, page_size=1) as crm:
        add_contacts(emu, 4, SINCE)
        started = time.monotonic()
        assert len(list(crm.contacts(None, []))) == 4
        elapsed = time.monotonic() - started
        assert crm.api_calls() == 4  # no 429 was provoked
        assert elapsed >= 0.9


def test_search_limiter_keeps_under_the_search_rate_limit() -> None:
    # Five searches at once would break the limit (4/s here); paced at 2/s, even with network
    # jitter, they stay under it.
    with Emulator(search_rate_limit=(4, 1.0)) as emu, adapter(emu, search_per_second=2) as crm:
        add_contacts(emu, 5 * 200, SINCE + timedelta(hours=1))
        started = time.monotonic()
        assert len(list(crm.contacts(SINCE, ["email"]))) == 1000
        assert crm.api_calls() == 5  # every search answered on the first try
        assert time.monotonic() - started >= 1.9


def test_settings_forbid_unknown_keys_and_hide_the_token(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="(?i)extra"):
        HubSpotSettings.model_validate({**emu.adapter_settings(), "portal": "x"})
    settings = HubSpotSettings(**emu.adapter_settings())
    assert "pat-demo" not in json.dumps(settings.model_dump(mode="json"))
