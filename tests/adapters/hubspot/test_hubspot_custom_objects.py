"""The HubSpot emulator's custom objects (schemas API, records by unique property) and v4
association writes, through the real hubspot-api-client."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hubspot import HubSpot
from urllib3.util.retry import Retry

from adapters.hubspot.emulator import Emulator
from adapters.hubspot.touchpoint_schema import SCHEMA, UNIQUE_PROPERTY

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


@pytest.fixture
def type_id(emu: Emulator) -> str:
    """The touchpoints object installed; its objectTypeId."""
    return str(emu.install_touchpoints_schema()["objectTypeId"])


def error_of(call: Any) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of the ApiException ``call`` raises."""
    try:
        call()
    except Exception as error:  # each hubspot sub-package has its own ApiException
        if not hasattr(error, "status"):
            raise
        return error.status, json.loads(getattr(error, "body", b""))
    raise AssertionError("the call did not fail")


def upsert(client: HubSpot, object_type: str, *inputs: tuple[str, dict[str, Any]]) -> Any:
    body = {
        "inputs": [{"idProperty": UNIQUE_PROPERTY, "id": k, "properties": p} for k, p in inputs]
    }
    return client.crm.objects.batch_api.upsert(
        object_type=object_type, batch_input_simple_public_object_batch_input_upsert=body
    )


def test_schema_create_answers_what_the_client_reads(emu: Emulator, client: HubSpot) -> None:
    api = client.crm.schemas.core_api
    schema = api.create(object_schema_egg=SCHEMA)
    assert schema.object_type_id.startswith("2-") and schema.name == "touchpoints"
    assert schema.fully_qualified_name == f"p{emu.portal_id}_touchpoints"
    assert (schema.labels.singular, schema.labels.plural) == ("Touchpoint", "Touchpoints")
    assert schema.required_properties == [UNIQUE_PROPERTY]
    assert schema.created_at.tzinfo is not None
    properties = {p.name: p for p in schema.properties}
    assert properties[UNIQUE_PROPERTY].has_unique_value is True
    assert properties["occurred_at"].type == "datetime"
    assert properties["credit_w_shaped"].type == "number"
    assert properties["hs_object_id"].modification_metadata.read_only_value is True
    associations = {a.to_object_type_id: a for a in schema.associations}
    assert set(associations) == {"0-1", "0-3"}
    assert all(a.from_object_type_id == schema.object_type_id for a in associations.values())
    contact_type = int(associations["0-1"].id)
    assert emu.association_type_id("touchpoints", "contacts") == contact_type
    assert [s.name for s in api.get_all().results] == ["touchpoints"]
    for name in (schema.object_type_id, schema.fully_qualified_name, "touchpoints"):
        assert api.get_by_id(object_type=name).id == schema.id
    status, body = error_of(lambda: api.get_by_id(object_type="2-999"))
    assert status == 404 and body["category"] == "OBJECT_NOT_FOUND"


def test_schema_duplicates_and_invalid_eggs_are_refused(emu: Emulator, client: HubSpot) -> None:
    api = client.crm.schemas.core_api
    api.create(object_schema_egg=SCHEMA)
    status, body = error_of(lambda: api.create(object_schema_egg=SCHEMA))
    assert status == 409 and body["category"] == "OBJECT_ALREADY_EXISTS"
    other = copy.deepcopy(SCHEMA) | {"name": "visits", "requiredProperties": ["nope"]}
    status, body = error_of(lambda: api.create(object_schema_egg=other))
    assert status == 400 and body["category"] == "VALIDATION_ERROR"
    other |= {"requiredProperties": [], "associatedObjects": ["SPACESHIP"]}
    assert error_of(lambda: api.create(object_schema_egg=other))[0] == 400
    assert len(api.get_all().results) == 1


def test_portal_without_custom_objects_refuses_schemas() -> None:
    """Below Enterprise a private app cannot hold the custom-object scopes: the schemas API
    refuses reads as well as writes (the scopes of its reference pages)."""
    with Emulator(custom_objects=False) as emu:
        client = HubSpot(access_token=emu.access_token, host=emu.url, retry=Retry(0))
        api = client.crm.schemas.core_api
        status, body = error_of(lambda: api.create(object_schema_egg=SCHEMA))
        read_status, read_body = error_of(lambda: api.get_all())
        one_status, _ = error_of(lambda: api.get_by_id(object_type="touchpoints"))
    assert status == 403 and body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"] == {"requiredGranularScopes": ["crm.schemas.custom.write"]}
    assert (read_status, one_status) == (403, 403) and read_body["category"] == "MISSING_SCOPES"
    scopes = read_body["errors"][0]["context"]["requiredGranularScopes"]
    assert scopes == ["crm.schemas.custom.read"]


def test_batch_upsert_creates_then_updates_by_the_unique_property(
    emu: Emulator, client: HubSpot, type_id: str
) -> None:
    created = upsert(
        client,
        type_id,
        ("tp-1", {"channel": "Email", "occurred_at": "2026-11-02T10:00:00Z"}),
        ("tp-2", {"channel": "Paid Search", "credit_linear": 0.5, "revenue_linear": "1250.50"}),
    )
    assert [(r.new, r.properties[UNIQUE_PROPERTY]) for r in created.results] == [
        (True, "tp-1"), (True, "tp-2"),
    ]  # fmt: skip
    ids = [r.id for r in created.results]
    assert emu.record("touchpoints", ids[0])["occurred_at"] == "2026-11-02T10:00:00.000Z"
    assert emu.record(type_id, ids[1])["credit_linear"] == "0.5"
    fully_qualified = f"p{emu.portal_id}_touchpoints"
    updated = upsert(client, fully_qualified, ("tp-1", {"channel": "Display"}), ("TP-2", {}))
    assert [(r.id, r.new) for r in updated.results] == [
        (ids[0], False),
        (updated.results[1].id, True),
    ]
    assert updated.results[1].id not in ids  # the unique property is case-sensitive
    assert emu.record("touchpoints", ids[0])["channel"] == "Display"
    assert emu.record("touchpoints", ids[0])["occurred_at"] == "2026-11-02T10:00:00.000Z"


def test_batch_upsert_refuses_the_whole_batch(emu: Emulator, client: HubSpot, type_id: str) -> None:
    status, body = error_of(
        lambda: upsert(
            client, type_id, ("tp-1", {"channel": "Email"}), ("tp-2", {"credit_linear": "x"})
        )
    )
    assert status == 400 and body["category"] == "VALIDATION_ERROR"
    assert "INVALID_FLOAT" in body["message"]
    status, body = error_of(lambda: upsert(client, type_id, ("tp-1", {}), ("tp-1", {})))
    assert status == 400 and "Duplicate IDs" in body["message"]
    status, body = error_of(lambda: upsert(client, type_id, ("tp-1", {"nope": "x"})))
    assert status == 400 and "PROPERTY_DOESNT_EXIST" in body["message"]
    status, body = error_of(
        lambda: client.crm.objects.batch_api.upsert(
            object_type=type_id,
            batch_input_simple_public_object_batch_input_upsert={
                "inputs": [{"idProperty": "channel", "id": "Email", "properties": {}}]
            },
        )
    )
    assert status == 400
    assert body["message"] == (
        f"Unable to perform update/upsert by non-unique {type_id} property channel "
        f"in portal ID {emu.portal_id}"
    )
    too_many = [(f"tp-{i}", {}) for i in range(101)]
    assert error_of(lambda: upsert(client, type_id, *too_many))[0] == 400
    assert emu.objects["touchpoints"] == {}


def test_batch_read_by_unique_property_and_archive(
    emu: Emulator, client: HubSpot, type_id: str
) -> None:
    ids = [
        r.id for r in upsert(client, type_id, ("tp-1", {"channel": "Email"}), ("tp-2", {})).results
    ]
    api = client.crm.objects.batch_api
    by_key = {
        "idProperty": UNIQUE_PROPERTY,
        "inputs": [{"id": "tp-1"}, {"id": "tp-2"}],
        "properties": ["channel"],
        "propertiesWithHistory": [],
    }
    read = api.read(object_type=type_id, batch_read_input_simple_public_object_id=by_key)
    assert [r.id for r in read.results] == ids
    assert read.results[0].properties["channel"] == "Email"
    assert api.archive(
        object_type="touchpoints",
        batch_input_simple_public_object_id={"inputs": [{"id": ids[0]}, {"id": "999999"}]},
    ) is None  # fmt: skip
    partial = api.read(object_type=type_id, batch_read_input_simple_public_object_id=by_key)
    assert [r.id for r in partial.results] == [ids[1]]
    assert partial.errors[0].category == "OBJECT_NOT_FOUND"
    assert partial.errors[0].context == {"ids": ["tp-1"]}
    archived = api.read(
        object_type=type_id, batch_read_input_simple_public_object_id=by_key, archived=True
    )
    assert [r.id for r in archived.results] == [ids[0]]
    # an archived record no longer holds its key: upserting it creates a new record
    (again,) = upsert(client, type_id, ("tp-1", {})).results
    assert again.new is True and again.id != ids[0]


def test_update_search_and_list_work_on_custom_objects(
    emu: Emulator, client: HubSpot, type_id: str
) -> None:
    ids = [r.id for r in upsert(client, type_id, ("a", {"channel": "Email"}), ("b", {})).results]
    updated = client.crm.objects.batch_api.update(
        object_type=type_id,
        batch_input_simple_public_object_batch_input={
            "inputs": [
                {"id": ids[1], "properties": {"channel": "Email"}},
                {"id": ids[0], "properties": {UNIQUE_PROPERTY: "b"}},
            ]
        },
    )
    assert [r.id for r in updated.results] == [ids[1]]
    assert updated.errors[0].category == "CONFLICT" and updated.errors[0].context["ids"] == [ids[0]]
    found = client.crm.objects.search_api.do_search(
        type_id,
        {"filterGroups": [{"filters": [{"propertyName": "channel", "operator": "EQ",
                                        "value": "email"}]}], "properties": [UNIQUE_PROPERTY]},
    )  # fmt: skip
    assert found.total == 2 and {r.properties[UNIQUE_PROPERTY] for r in found.results} == {"a", "b"}
    assert client.crm.objects.search_api.do_search(type_id, {"query": "b"}).total == 1
    page = client.crm.objects.basic_api.get_page("touchpoints", limit=1)
    assert page.results[0].id == ids[0] and page.paging.next.after == ids[1]
    assert set(page.results[0].properties) == {
        "hs_createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    }


def test_associations_default_labelled_read_and_archive(
    emu: Emulator, client: HubSpot, type_id: str
) -> None:
    contact = emu.add_contact({"email": "a@x.com"}, DAY)
    deal = emu.add_deal({"dealname": "D"}, DAY, [contact])
    (touch,) = [r.id for r in upsert(client, type_id, ("tp-1", {})).results]
    v4 = client.crm.associations.v4.batch_api
    pair = {"inputs": [{"from": {"id": touch}, "to": {"id": contact}}]}
    default = v4.create_default(
        type_id, "contacts", batch_input_public_default_association_multi_post=pair
    )
    to_contact = emu.association_type_id(type_id, "contacts")
    (spec,) = [r.association_spec for r in default.results]
    assert (spec.association_category, spec.association_type_id) == ("USER_DEFINED", to_contact)
    to_deal = emu.association_type_id("touchpoints", "deals")
    labelled = {"inputs": [{"from": {"id": touch}, "to": {"id": deal},
                            "types": [{"associationCategory": "USER_DEFINED",
                                       "associationTypeId": to_deal}]}]}  # fmt: skip
    created = v4.create(f"p{emu.portal_id}_touchpoints", "0-3",
                        batch_input_public_association_multi_post=labelled)  # fmt: skip
    (link,) = created.results
    assert (link.from_object_type_id, link.to_object_type_id, link.to_object_id) == (
        type_id, "0-3", deal,
    )  # fmt: skip
    read = v4.get_page(
        "contacts",
        type_id,
        batch_input_public_fetch_associations_batch_request={"inputs": [{"id": contact}]},
    )
    ((found,),) = [r.to for r in read.results]
    assert found.to_object_id == touch
    assert [t.type_id for t in found.association_types] == [
        emu.association_type_id("contacts", type_id)
    ]
    archive = {"inputs": [{"from": {"id": touch}, "to": [{"id": contact}]}]}
    assert (
        v4.archive(type_id, "contacts", batch_input_public_association_multi_archive=archive)
        is None
    )
    gone = v4.get_page(
        type_id,
        "contacts",
        batch_input_public_fetch_associations_batch_request={"inputs": [{"id": touch}]},
    )
    assert gone.results == [] and gone.errors[0].category == "OBJECT_NOT_FOUND"
    assert emu.deal_contacts[deal] == [contact]  # deal to contact links are untouched


def test_association_writes_are_validated(emu: Emulator, client: HubSpot, type_id: str) -> None:
    contact = emu.add_contact({"email": "a@x.com"}, DAY)
    (touch,) = [r.id for r in upsert(client, type_id, ("tp-1", {})).results]
    v4 = client.crm.associations.v4.batch_api

    def default(*pairs: tuple[str, str]) -> Any:
        body = {"inputs": [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]}
        return v4.create_default(
            type_id, "contacts", batch_input_public_default_association_multi_post=body
        )

    status, body = error_of(lambda: default((touch, contact), (touch, "999")))
    assert status == 400 and body["message"] == "One or more associations are invalid"
    assert body["context"]["INVALID_OBJECT_IDS"] == ["CONTACT=999 is not valid"]
    assert error_of(lambda: default(*[(touch, contact)] * 2001))[0] == 400
    wrong_type = {"inputs": [{"from": {"id": touch}, "to": {"id": contact},
                              "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                         "associationTypeId": 1}]}]}  # fmt: skip
    status, body = error_of(
        lambda: v4.create(type_id, "contacts", batch_input_public_association_multi_post=wrong_type)
    )
    assert status == 400 and body["category"] == "VALIDATION_ERROR"
    read = {"inputs": [{"id": touch}] * 1001}
    status, _ = error_of(
        lambda: v4.get_page(
            type_id, "contacts", batch_input_public_fetch_associations_batch_request=read
        )
    )
    assert status == 400
    assert emu.associations.get(("touchpoints", "contacts"), {}) == {}
    assert error_of(lambda: v4.create_default("touchpoints", "tickets", {"inputs": []}))[0] == 400


def test_new_endpoints_share_auth_and_rate_limits(type_id: str, emu: Emulator) -> None:
    intruder = HubSpot(access_token="nope", host=emu.url, retry=Retry(0, raise_on_status=False))
    status, body = error_of(lambda: upsert(intruder, type_id, ("tp-1", {})))
    assert status == 401 and body["category"] == "INVALID_AUTHENTICATION"
    emu.ten_secondly = (1, 10.0)
    client = HubSpot(
        access_token=emu.access_token, host=emu.url, retry=Retry(0, raise_on_status=False)
    )
    _, _, headers = client.crm.schemas.core_api.get_all_with_http_info()
    assert headers["X-HubSpot-RateLimit-Max"] == "1"
    status, body = error_of(lambda: upsert(client, type_id, ("tp-1", {})))
    assert status == 429 and body["policyName"] == "TEN_SECONDLY_ROLLING"
    emu.ten_secondly, emu.daily_limit = None, 0
    status, body = error_of(lambda: client.crm.schemas.core_api.get_all())
    assert status == 429 and body["policyName"] == "DAILY"
