"""The HubSpot emulator's wire behaviour, seen through the real hubspot-api-client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hubspot import HubSpot
from urllib3.util.retry import Retry

from adapters.hubspot.adapter import HubSpotCrm
from adapters.hubspot.emulator import SAMPLE_DAY, Emulator

DAY = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as server:
        yield server


@pytest.fixture
def client(emu: Emulator) -> HubSpot:
    return HubSpot(
        access_token=emu.access_token, host=emu.url, retry=Retry(total=0, raise_on_status=False)
    )


def error_of(call: Any) -> tuple[int, dict[str, Any], Any]:
    """Status, JSON body and headers of the ApiException ``call`` raises."""
    try:
        call()
    except Exception as error:  # each hubspot sub-package has its own ApiException
        if not hasattr(error, "status"):
            raise
        return error.status, json.loads(getattr(error, "body", b"")), getattr(error, "headers", {})
    raise AssertionError("the call did not fail")


def search(client: HubSpot, body: dict[str, Any]) -> Any:
    return client.crm.objects.search_api.do_search("contacts", body)


def filters(*specs: dict[str, Any]) -> dict[str, Any]:
    return {"filterGroups": [{"filters": list(specs)}], "limit": 100}


def test_seed_sample_is_small_recent_and_consistent(emu: Emulator) -> None:
    emu.seed_sample()
    contacts = list(emu.objects["contacts"].values())
    deals = list(emu.objects["deals"].values())
    assert len(contacts) == len(deals) == 30
    for record in contacts + deals:
        assert record.created_at.tzinfo is not None
        assert SAMPLE_DAY - timedelta(days=30) <= record.created_at <= record.updated_at
        assert record.updated_at <= SAMPLE_DAY
    assert all(emu.deal_contacts[d.id] for d in deals)
    assert {emu.deal(d.id)["hs_is_closed_won"] for d in deals} == {"true", "false"}
    assert HubSpotCrm.Settings(**emu.adapter_settings())


def test_wrong_token_gets_hubspots_401(emu: Emulator) -> None:
    bad = HubSpot(access_token="nope", host=emu.url, retry=Retry(total=0, raise_on_status=False))
    status, body, _ = error_of(lambda: bad.crm.objects.basic_api.get_page("contacts"))
    assert status == 401
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found")


def test_responses_carry_rate_limit_headers_except_search(emu: Emulator, client: HubSpot) -> None:
    _, _, headers = client.crm.objects.basic_api.get_page_with_http_info("contacts")
    assert headers["X-HubSpot-RateLimit-Max"] == "110"
    assert headers["X-HubSpot-RateLimit-Remaining"] == "109"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    _, _, search_headers = client.crm.objects.search_api.do_search_with_http_info("contacts", {})
    assert "X-HubSpot-RateLimit-Remaining" not in search_headers


def test_ten_secondly_limit_answers_hubspots_429() -> None:
    with Emulator(rate_limit=(2, 10.0)) as emu:
        client = HubSpot(
            access_token="pat-demo", host=emu.url, retry=Retry(0, raise_on_status=False)
        )
        api = client.crm.objects.basic_api
        api.get_page("contacts")
        api.get_page("contacts")
        status, body, headers = error_of(lambda: api.get_page("contacts"))
    assert status == 429
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert "Retry-After" not in headers


def test_search_limit_is_separate_and_sends_no_headers() -> None:
    with Emulator(rate_limit=(1, 10.0), search_rate_limit=(1, 10.0)) as emu:
        client = HubSpot(
            access_token="pat-demo", host=emu.url, retry=Retry(0, raise_on_status=False)
        )
        client.crm.objects.basic_api.get_page("contacts")
        search(client, {})  # not counted in the ten-second limit
        status, body, headers = error_of(lambda: search(client, {}))
    assert status == 429 and body["policyName"] == "SECONDLY"
    assert "X-HubSpot-RateLimit-Remaining" not in headers


def test_list_pages_with_a_cursor_and_rejects_limits_over_100(
    emu: Emulator, client: HubSpot
) -> None:
    ids = [emu.add_contact({"email": f"p{i}@x.com"}, DAY) for i in range(5)]
    api = client.crm.objects.basic_api
    first = api.get_page("contacts", limit=2, properties=["email", "company"])
    assert [r.id for r in first.results] == ids[:2]
    assert first.results[0].properties["email"] == "p0@x.com"
    assert first.results[0].properties["company"] is None
    rest = api.get_page("contacts", limit=10, after=first.paging.next.after)
    assert [r.id for r in rest.results] == ids[2:] and rest.paging is None
    assert error_of(lambda: api.get_page("contacts", limit=101))[0] == 400


def test_search_filters_sorts_and_counts(emu: Emulator, client: HubSpot) -> None:
    a = emu.add_contact({"email": "a@x.com", "lifecyclestage": "lead"}, DAY)
    b = emu.add_contact({"email": "b@x.com", "lifecyclestage": "customer"}, DAY + timedelta(days=1))
    c = emu.add_contact({"email": "c@x.com"}, DAY + timedelta(days=2))
    ms = int((DAY + timedelta(hours=12)).timestamp() * 1000)

    def ids(body: dict[str, Any]) -> list[str]:
        return [r.id for r in search(client, body).results]

    assert ids(filters({"propertyName": "createdate", "operator": "GTE", "value": str(ms)})) == [
        b,
        c,
    ]
    assert ids(
        filters({"propertyName": "lifecyclestage", "operator": "IN", "values": ["lead"]})
    ) == [a]
    assert ids(filters({"propertyName": "lifecyclestage", "operator": "NOT_HAS_PROPERTY"})) == [c]
    assert ids(filters({"propertyName": "email", "operator": "EQ", "value": "B@X.COM"})) == [b]
    assert ids(
        filters({"propertyName": "createdate", "operator": "BETWEEN", "value": "0",
                 "highValue": str(ms)})
    ) == [a]  # fmt: skip
    either = {"filterGroups": [
        {"filters": [{"propertyName": "email", "operator": "EQ", "value": "a@x.com"}]},
        {"filters": [{"propertyName": "email", "operator": "EQ", "value": "c@x.com"}]},
    ], "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}]}  # fmt: skip
    assert ids(either) == [c, a]
    page = search(client, {"limit": 2, "sorts": ["createdate"]})
    assert page.total == 3 and page.paging.next.after == "2"


def test_search_enforces_hubspots_limits(emu: Emulator, client: HubSpot) -> None:
    one = {"propertyName": "email", "operator": "HAS_PROPERTY"}
    window = error_of(lambda: search(client, {"after": "9900", "limit": 101}))
    assert window[0] == 400 and window[1]["category"] == "VALIDATION_ERROR"
    assert search(client, {"after": "9900", "limit": 100}).total == 0
    assert error_of(lambda: search(client, {"limit": 201}))[0] == 400
    six_groups = {"filterGroups": [{"filters": [one]}] * 6}
    assert error_of(lambda: search(client, six_groups))[0] == 400
    eleven = {"filterGroups": [{"filters": [one] * 11}]}
    assert error_of(lambda: search(client, eleven))[0] == 400
    too_many = {"filterGroups": [{"filters": [one] * 9}] * 3}
    assert error_of(lambda: search(client, too_many))[0] == 400
    unknown = filters({"propertyName": "nope", "operator": "EQ", "value": "x"})
    assert error_of(lambda: search(client, unknown))[0] == 400


def test_batch_update_rejects_more_than_100_inputs(emu: Emulator, client: HubSpot) -> None:
    contact = emu.add_contact({}, DAY)
    inputs = [{"id": contact, "properties": {"utm_source": "x"}}] + [
        {"id": str(900_000 + i), "properties": {}} for i in range(100)
    ]
    status, body, _ = error_of(
        lambda: client.crm.objects.batch_api.update("contacts", {"inputs": inputs})
    )
    assert status == 400 and body["category"] == "VALIDATION_ERROR"
    assert emu.contact(contact)["utm_source"] is None


def test_batch_update_207_names_the_failing_property(emu: Emulator, client: HubSpot) -> None:
    good, bad_option, unknown, bad_number = (emu.add_contact({}, DAY) for _ in range(4))
    deal = emu.add_deal({"dealname": "D", "dealstage": "appointmentscheduled"}, DAY, [good])
    before = emu.contact(good)["lastmodifieddate"]
    response = client.crm.objects.batch_api.update(
        "contacts",
        {"inputs": [
            {"id": good, "properties": {"lifecyclestage": "lead"}},
            {"id": bad_option, "properties": {"lifecyclestage": "Lead"}},
            {"id": unknown, "properties": {"favourite_colour": "blue"}},
        ]},
    )  # fmt: skip
    assert response.status == "COMPLETE" and [r.id for r in response.results] == [good]
    errors = {e.context["ids"][0]: e for e in response.errors}
    assert errors[bad_option].category == "VALIDATION_ERROR"
    problems = json.loads(errors[bad_option].message.split(": ", 1)[1])
    assert problems[0]["name"] == "lifecyclestage" and problems[0]["error"] == "INVALID_OPTION"
    assert "favourite_colour" in errors[unknown].message
    assert emu.contact(good)["lifecyclestage"] == "lead"
    assert str(emu.contact(good)["lastmodifieddate"]) > str(before)
    assert emu.contact(bad_option)["lifecyclestage"] is None

    deals = client.crm.objects.batch_api.update(
        "deals",
        {"inputs": [
            {"id": deal, "properties": {"amount": "lots"}},
            {"id": bad_number, "properties": {"amount": "1"}},
        ]},
    )  # fmt: skip
    categories = sorted(e.category for e in deals.errors)
    assert categories == ["OBJECT_NOT_FOUND", "VALIDATION_ERROR"]


def test_stage_changes_recompute_closed_flags(emu: Emulator, client: HubSpot) -> None:
    deal = emu.add_deal({"dealname": "D", "dealstage": "contractsent"}, DAY, [])
    assert emu.deal(deal)["hs_is_closed"] == "false"
    client.crm.objects.batch_api.update(
        "deals", {"inputs": [{"id": deal, "properties": {"dealstage": "closedwon"}}]}
    )
    assert emu.deal(deal)["hs_is_closed_won"] == "true" and emu.deal(deal)["hs_is_closed"] == "true"
    read_only = client.crm.objects.batch_api.update(
        "deals", {"inputs": [{"id": deal, "properties": {"hs_is_closed_won": "false"}}]}
    )
    assert "hs_is_closed_won" in read_only.errors[0].message and not read_only.results


def test_batch_read_reports_missing_ids_as_207(emu: Emulator, client: HubSpot) -> None:
    found = emu.add_contact({"email": "f@x.com"}, DAY)
    gone = emu.add_contact({"email": "g@x.com"}, DAY)
    emu.delete_contact(gone)
    response = client.crm.objects.batch_api.read(
        "contacts",
        {
            "inputs": [{"id": found}, {"id": gone}],
            "properties": ["email"],
            "propertiesWithHistory": [],
        },
        archived=False,
    )
    assert [r.id for r in response.results] == [found]
    assert response.errors[0].category == "OBJECT_NOT_FOUND"
    assert response.errors[0].context == {"ids": [gone]}
    by_email = client.crm.objects.batch_api.read(
        "contacts",
        {"inputs": [{"id": "F@X.com"}], "idProperty": "email", "properties": ["email"],
         "propertiesWithHistory": []},
    )  # fmt: skip
    assert [r.id for r in by_email.results] == [found]


def test_properties_and_groups_are_created_once(emu: Emulator, client: HubSpot) -> None:
    groups = client.crm.properties.groups_api
    core = client.crm.properties.core_api
    groups.create("contacts", {"name": "closedloop", "label": "Closedloop"})
    assert (
        error_of(lambda: groups.create("contacts", {"name": "closedloop", "label": "X"}))[0] == 409
    )
    spec = {
        "name": "cl_channel",
        "label": "Channel",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "closedloop",
        "options": [{"label": "Email", "value": "email"}],
    }
    created = core.create("contacts", spec)
    assert created.name == "cl_channel" and created.modification_metadata.read_only_value is False
    status, body, _ = error_of(lambda: core.create("contacts", spec))
    assert status == 409 and body["category"] == "OBJECT_ALREADY_EXISTS"
    orphan = {**spec, "name": "cl_other", "groupName": "nowhere"}
    assert error_of(lambda: core.create("contacts", orphan))[0] == 400
    no_options = {**spec, "name": "cl_empty", "options": []}
    assert error_of(lambda: core.create("contacts", no_options))[0] == 400
    names = {p.name for p in core.get_all("contacts").results}
    assert "cl_channel" in names and "cl_other" not in names


def test_associations_page_per_input_and_cap_inputs(emu: Emulator, client: HubSpot) -> None:
    buyers = [emu.add_contact({}, DAY) for _ in range(3)]
    deal = emu.add_deal({"dealname": "D"}, DAY, buyers)
    lonely = emu.add_deal({"dealname": "L"}, DAY, [])
    emu.association_page_size = 2
    api = client.crm.associations.v4.batch_api
    page = api.get_page("deals", "contacts", {"inputs": [{"id": deal}, {"id": lonely}]})
    (result,) = page.results
    assert [t.to_object_id for t in result.to] == buyers[:2]
    assert result.to[0].association_types[0].type_id == 3
    assert page.errors[0].context == {"fromObjectId": [lonely]}
    rest = api.get_page(
        "deals", "contacts", {"inputs": [{"id": deal, "after": result.paging.next.after}]}
    )
    assert [t.to_object_id for t in rest.results[0].to] == buyers[2:]
    too_many = {"inputs": [{"id": str(i)} for i in range(1001)]}
    assert error_of(lambda: api.get_page("deals", "contacts", too_many))[0] == 400
