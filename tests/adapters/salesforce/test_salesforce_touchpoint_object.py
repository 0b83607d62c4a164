"""The emulator's CL_Touchpoint__c custom object, through the real simple-salesforce client:
describe, sObject Collections upsert and delete, single upsert, Bulk API 2.0 upsert and delete
jobs, SOQL, and SetNull lookups."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from adapters.salesforce.emulator import SAMPLE_DAY, Emulator
from adapters.salesforce.touchpoint_object import EXTERNAL_ID, OBJECT_NAME

UPSERT = f"composite/sobjects/{OBJECT_NAME}/{EXTERNAL_ID}"


@pytest.fixture
def tp(emu: Emulator) -> Emulator:
    """The sample org with the touchpoint object deployed."""
    emu.install_touchpoint_object()
    return emu


def touch(key: str | None, **fields: Any) -> dict[str, Any]:
    """One record of a collections request."""
    record: dict[str, Any] = {"attributes": {"type": OBJECT_NAME}, **fields}
    if key is not None:
        record[EXTERNAL_ID] = key
    return record


def upsert(sf: Salesforce, *records: dict[str, Any], all_or_none: bool = False) -> Any:
    return sf.restful(
        UPSERT, method="PATCH", json={"allOrNone": all_or_none, "records": list(records)}
    )


def codes(results: list[dict[str, Any]]) -> list[str | None]:
    return [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]


def first(emu: Emulator, sobject: str) -> str:
    return sorted(emu.records[sobject])[0]


def test_object_is_absent_until_installed(emu: Emulator, sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.restful(f"sobjects/{OBJECT_NAME}/describe")
    assert caught.value.content == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]
    assert OBJECT_NAME not in {o["name"] for o in sf.describe()["sobjects"]}
    with pytest.raises(SalesforceMalformedRequest) as query:
        sf.query(f"SELECT Id FROM {OBJECT_NAME}")
    assert query.value.content[0]["errorCode"] == "INVALID_TYPE"


def test_describe_has_the_custom_object_and_its_fields(tp: Emulator, sf: Salesforce) -> None:
    listed = {o["name"]: o for o in sf.describe()["sobjects"]}[OBJECT_NAME]
    assert listed["custom"] is True and listed["labelPlural"] == "Touchpoints"
    describe = sf.restful(f"sobjects/{OBJECT_NAME}/describe")
    assert (describe["label"], describe["custom"]) == ("Touchpoint", True)
    assert describe["keyPrefix"] == listed["keyPrefix"] and len(describe["keyPrefix"]) == 3
    fields = {f["name"]: f for f in describe["fields"]}
    key = fields[EXTERNAL_ID]
    assert (key["type"], key["length"], key["createable"], key["updateable"]) == (
        "string", 80, True, True,
    )  # fmt: skip
    assert key["externalId"] and key["unique"] and key["caseSensitive"] and key["idLookup"]
    contact = fields["Contact__c"]
    assert (contact["type"], contact["referenceTo"], contact["relationshipName"]) == (
        "reference", ["Contact"], "Contact__r",
    )  # fmt: skip
    assert fields["Occurred_At__c"]["type"] == "datetime"
    credit, revenue = fields["Credit_W_Shaped__c"], fields["Revenue_W_Shaped__c"]
    assert (credit["type"], credit["precision"], credit["scale"]) == ("double", 5, 4)
    assert (revenue["type"], revenue["precision"], revenue["scale"]) == ("currency", 16, 2)
    assert fields["Name"]["autoNumber"] and not fields["Name"]["createable"]
    children = sf.Contact.describe()["childRelationships"]
    assert {
        "childSObject": OBJECT_NAME,
        "field": "Contact__c",
        "relationshipName": "Closedloop_Touchpoints__r",
        "cascadeDelete": False,
        "restrictedDelete": False,
        "deprecatedAndHidden": False,
    } in children


def test_install_can_leave_fields_out(emu: Emulator, sf: Salesforce) -> None:
    emu.install_touchpoint_object(omit=["Credit_W_Shaped__c"])
    names = {f["name"] for f in sf.restful(f"sobjects/{OBJECT_NAME}/describe")["fields"]}
    assert "Credit_W_Shaped__c" not in names and "Credit_Linear__c" in names
    (result,) = upsert(sf, touch("k1", Credit_W_Shaped__c=0.5))
    assert result["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert not result["success"] and not emu.records[OBJECT_NAME]
    with pytest.raises(KeyError):
        emu.install_touchpoint_object(omit=["Nope__c"])


def test_collection_upsert_creates_then_updates(tp: Emulator, sf: Salesforce) -> None:
    contact, opportunity = first(tp, "Contact"), first(tp, "Opportunity")
    created = upsert(
        sf,
        touch("k1", Contact__c=contact, Channel__c="Email", Occurred_At__c="2026-11-02T10:00:00Z"),
        touch("k2", Contact__c=contact, Opportunity__c=opportunity, Credit_Linear__c=0.5,
              Revenue_Linear__c=1250.5, Position__c="First;Lead Creation"),
    )  # fmt: skip
    assert [(r["success"], r["created"], r["errors"]) for r in created] == [(True, True, [])] * 2
    ids = [r["id"] for r in created]
    assert all(i.startswith(tp.key_prefixes[OBJECT_NAME]) and len(i) == 18 for i in ids)
    first_record = tp.record(OBJECT_NAME, ids[0])
    assert first_record["Name"] == "TP-0000001" and first_record["OwnerId"] == tp.user_id
    assert first_record["Occurred_At__c"] == "2026-11-02T10:00:00.000+0000"
    assert tp.record(OBJECT_NAME, ids[1])["Name"] == "TP-0000002"
    assert tp.record(OBJECT_NAME, ids[1])["Credit_Linear__c"] == 0.5
    updated = upsert(
        sf,
        touch("k1", Channel__c="Paid Search", Credit_Linear__c=1 / 3),
        touch("k2", Credit_Linear__c=None),
    )
    assert [(r["id"], r["created"]) for r in updated] == [(ids[0], False), (ids[1], False)]
    assert tp.record(OBJECT_NAME, ids[0])["Channel__c"] == "Paid Search"
    assert tp.record(OBJECT_NAME, ids[0])["Contact__c"] == contact  # untouched fields stay
    assert tp.record(OBJECT_NAME, ids[0])["Credit_Linear__c"] == 0.3333  # Number(5,4)
    assert tp.record(OBJECT_NAME, ids[1])["Credit_Linear__c"] is None
    assert len(tp.records[OBJECT_NAME]) == 2


def test_collection_upsert_reports_each_record_error_in_input_order(
    tp: Emulator, sf: Salesforce
) -> None:
    contacts = sorted(tp.records["Contact"])
    tp.delete("Contact", contacts[1])
    lead = first(tp, "Lead")
    missing_contact = tp.new_id("003")
    results = upsert(
        sf,
        touch("ok", Contact__c=contacts[0]),
        touch("unknown-field", Nope__c="x"),
        touch("lead-as-contact", Contact__c=lead),
        touch("not-an-id", Contact__c="nope"),
        touch("no-such-contact", Contact__c=missing_contact),
        touch("deleted-contact", Contact__c=contacts[1]),
        touch("long", Channel__c="x" * 256),
        touch(None, Channel__c="Email"),
        touch("x" * 81),
        touch("too-much-credit", Credit_Linear__c=12.5),
        touch("auto-number", Name="TP-9"),
        {"attributes": {"type": "Contact"}, EXTERNAL_ID: "wrong-type"},
    )
    assert codes(results) == [
        None,
        "INVALID_FIELD",
        "FIELD_INTEGRITY_EXCEPTION",
        "MALFORMED_ID",
        "INVALID_CROSS_REFERENCE_KEY",
        "ENTITY_IS_DELETED",
        "STRING_TOO_LONG",
        "MISSING_ARGUMENT",
        "STRING_TOO_LONG",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "INVALID_TYPE",
    ]
    assert results[0]["success"] and not any(r["success"] for r in results[1:])
    assert all("id" not in r and r["created"] is False for r in results[1:])
    assert results[2]["errors"][0] == {
        "statusCode": "FIELD_INTEGRITY_EXCEPTION",
        "message": f"Contact: id value of incorrect type: {lead}",
        "fields": ["Contact__c"],
    }
    assert results[7]["errors"][0]["message"] == f"{EXTERNAL_ID} not specified"
    assert len(tp.records[OBJECT_NAME]) == 1


def test_duplicate_keys_within_a_request_fail_every_copy(tp: Emulator, sf: Salesforce) -> None:
    results = upsert(sf, touch("k1"), touch("k2"), touch("k1"), touch("K2"))
    assert codes(results) == ["DUPLICATE_VALUE", None, "DUPLICATE_VALUE", None]
    assert results[0]["errors"][0] == {
        "statusCode": "DUPLICATE_VALUE",
        "message": "Duplicate external id specified: k1",
        "fields": [EXTERNAL_ID],
    }
    # the key is case-sensitive: k2 and K2 are two records, each matched exactly
    again = upsert(sf, touch("K2", Channel__c="Email"))
    assert (again[0]["id"], again[0]["created"]) == (results[3]["id"], False)


def test_all_or_none_rolls_back_every_upsert(tp: Emulator, sf: Salesforce) -> None:
    results = upsert(sf, touch("k1"), touch("k2", Nope__c="x"), all_or_none=True)
    assert codes(results) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "INVALID_FIELD"]
    assert not tp.records[OBJECT_NAME]


def test_collection_upsert_whole_request_errors(tp: Emulator, sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as too_many:
        upsert(sf, *[touch(f"k{i}") for i in range(201)])
    assert too_many.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    with pytest.raises(SalesforceMalformedRequest) as wrong_type:
        upsert(sf, touch("k1", Credit_Linear__c="half"))
    assert wrong_type.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    with pytest.raises(SalesforceResourceNotFound):  # not an External ID field
        sf.restful(f"composite/sobjects/{OBJECT_NAME}/Channel__c", method="PATCH",
                   json={"allOrNone": False, "records": [touch("k1")]})  # fmt: skip
    assert not tp.records[OBJECT_NAME]


def test_single_upsert_answers_201_then_200(tp: Emulator, sf: Salesforce) -> None:
    created = sf.CL_Touchpoint__c.upsert(f"{EXTERNAL_ID}/k 1", {"Channel__c": "Email"}, True)
    assert created.status_code == 201
    body = created.json()
    assert body["created"] is True and body["success"] is True
    updated = sf.CL_Touchpoint__c.upsert(f"{EXTERNAL_ID}/k 1", {"Channel__c": "Display"}, True)
    assert updated.status_code == 200  # API 46.0 and later; 204 before
    assert updated.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    assert tp.record(OBJECT_NAME, body["id"])[EXTERNAL_ID] == "k 1"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.CL_Touchpoint__c.upsert(f"{EXTERNAL_ID}/k2", {"Channel__c": "x" * 300})
    assert caught.value.content[0]["errorCode"] == "STRING_TOO_LONG"


def test_single_upsert_on_an_old_api_version_answers_204(
    tp: Emulator, client_for: Callable[[Emulator], Salesforce]
) -> None:
    old = client_for(tp)
    old.sf_version = "45.0"
    assert old.CL_Touchpoint__c.upsert(f"{EXTERNAL_ID}/k1", {"Channel__c": "Email"}) == 201
    assert old.CL_Touchpoint__c.upsert(f"{EXTERNAL_ID}/k1", {"Channel__c": "Web"}) == 204


def test_collection_delete_reports_each_id(tp: Emulator, sf: Salesforce) -> None:
    ids = [r["id"] for r in upsert(sf, touch("k1"), touch("k2"), touch("k3"))]
    tp.delete(OBJECT_NAME, ids[1])
    never = tp.new_id(tp.key_prefixes[OBJECT_NAME])
    results = sf.restful(
        "composite/sobjects",
        method="DELETE",
        params={"ids": ",".join([ids[0], ids[1], never, "garbage"]), "allOrNone": "false"},
    )
    assert codes(results) == [
        None, "ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID",
    ]  # fmt: skip
    assert results[0] == {"id": ids[0], "success": True, "errors": []}
    assert results[3] == {
        "success": False,
        "errors": [{"statusCode": "MALFORMED_ID", "message": "malformed id garbage", "fields": []}],
    }
    assert tp.record(OBJECT_NAME, ids[0])["IsDeleted"] is True
    left = sf.query(f"SELECT Id FROM {OBJECT_NAME}")["records"]
    assert [r["Id"] for r in left] == [ids[2]]
    everything = sf.query_all(f"SELECT Id, IsDeleted FROM {OBJECT_NAME}", include_deleted=True)
    assert len(everything["records"]) == 3
    # a deleted key is free again: upserting it creates a new record
    (again,) = upsert(sf, touch("k1"))
    assert again["created"] is True and again["id"] != ids[0]


def test_collection_delete_limit_and_all_or_none(tp: Emulator, sf: Salesforce) -> None:
    ids = [r["id"] for r in upsert(sf, touch("k1"))]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(ids * 201)})
    assert caught.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    results = sf.restful(
        "composite/sobjects",
        method="DELETE",
        params={"ids": f"{ids[0]},garbage", "allOrNone": "true"},
    )
    assert codes(results) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "MALFORMED_ID"]
    assert tp.record(OBJECT_NAME, ids[0])["IsDeleted"] is False


def test_deleting_a_person_or_opportunity_clears_the_lookup(tp: Emulator, sf: Salesforce) -> None:
    contact, lead, opportunity = (first(tp, o) for o in ("Contact", "Lead", "Opportunity"))
    (saved,) = upsert(sf, touch("k1", Contact__c=contact, Lead__c=lead, Opportunity__c=opportunity))
    before = tp.record(OBJECT_NAME, saved["id"])
    (deleted,) = sf.restful("composite/sobjects", method="DELETE", params={"ids": contact})
    assert deleted["success"]
    after = tp.record(OBJECT_NAME, saved["id"])
    assert after["Contact__c"] is None
    assert (after["Lead__c"], after["Opportunity__c"]) == (lead, opportunity)
    assert after["LastModifiedDate"] == before["LastModifiedDate"]
    assert after["SystemModstamp"] > before["SystemModstamp"]
    tp.delete("Opportunity", opportunity)  # a person deleting it in the UI
    sf.Lead.delete(lead)
    assert tp.record(OBJECT_NAME, saved["id"])["Opportunity__c"] is None
    assert tp.record(OBJECT_NAME, saved["id"])["Lead__c"] is None


def test_soql_over_touchpoints(tp: Emulator, sf: Salesforce) -> None:
    contacts = sorted(tp.records["Contact"])
    for key, contact in zip("abc", contacts, strict=False):  # written by an earlier run
        tp.add_record(OBJECT_NAME, {EXTERNAL_ID: key, "Contact__c": contact}, SAMPLE_DAY)
    wanted = ", ".join(f"'{c[:15]}'" for c in contacts[:2])  # 15-character Ids match too
    rows = sf.query_all(
        f"SELECT Id, Touchpoint_Key__c, Contact__c FROM {OBJECT_NAME} "
        f"WHERE Contact__c IN ({wanted}) ORDER BY Touchpoint_Key__c"
    )["records"]
    assert [(r[EXTERNAL_ID], r["Contact__c"]) for r in rows] == [
        ("a", contacts[0]), ("b", contacts[1]),
    ]  # fmt: skip
    upsert(sf, touch("b", Channel__c="Email"))
    changed = sf.query(
        f"SELECT Touchpoint_Key__c FROM {OBJECT_NAME} WHERE LastModifiedDate > 2026-11-20T00:00:00Z"
    )["records"]
    assert [r[EXTERNAL_ID] for r in changed] == ["b"]
    exact = f"SELECT Id FROM {OBJECT_NAME} WHERE Touchpoint_Key__c = "
    assert sf.query(exact + "'A'")["totalSize"] == 0  # case-sensitive unique field
    assert sf.query(exact + "'a'")["totalSize"] == 1


def bulk_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_bulk_upsert_job_reports_created_and_failed_rows(tp: Emulator, sf: Salesforce) -> None:
    contact = first(tp, "Contact")
    (existing,) = upsert(sf, touch("k1", Channel__c="Email", Source__c="google"))
    (job,) = sf.bulk2.CL_Touchpoint__c.upsert(
        records=[
            {EXTERNAL_ID: "k1", "Channel__c": "Paid Search", "Source__c": "#N/A", "Contact__c": ""},
            {EXTERNAL_ID: "k2", "Channel__c": "Email", "Source__c": "", "Contact__c": contact},
            {EXTERNAL_ID: "k3", "Channel__c": "x" * 256, "Source__c": "", "Contact__c": ""},
            {EXTERNAL_ID: "", "Channel__c": "Email", "Source__c": "", "Contact__c": ""},
            {EXTERNAL_ID: "k4", "Channel__c": "a", "Source__c": "", "Contact__c": ""},
            {EXTERNAL_ID: "k4", "Channel__c": "b", "Source__c": "", "Contact__c": ""},
        ],
        external_id_field=EXTERNAL_ID,
        wait=0,
    )
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (6, 4)
    ok = bulk_rows(sf.bulk2.CL_Touchpoint__c.get_successful_records(job["job_id"]))
    assert [(r["sf__Created"], r[EXTERNAL_ID]) for r in ok] == [("false", "k1"), ("true", "k2")]
    assert ok[0]["sf__Id"] == existing["id"]
    k1 = tp.record(OBJECT_NAME, existing["id"])
    assert (k1["Channel__c"], k1["Source__c"]) == ("Paid Search", None)  # #N/A clears
    assert tp.record(OBJECT_NAME, ok[1]["sf__Id"])["Contact__c"] == contact
    failed = bulk_rows(sf.bulk2.CL_Touchpoint__c.get_failed_records(job["job_id"]))
    errors = [r["sf__Error"].split(":", 1)[0] for r in failed]
    assert errors == ["STRING_TOO_LONG", "MISSING_ARGUMENT", "DUPLICATE_VALUE", "DUPLICATE_VALUE"]
    assert failed[2]["sf__Error"] == (
        f"DUPLICATE_VALUE:Duplicate external id specified: k4:{EXTERNAL_ID} --"
    )
    info = sf.bulk2.CL_Touchpoint__c._client.get_job(job["job_id"], False)
    assert (info["operation"], info["externalIdFieldName"]) == ("upsert", EXTERNAL_ID)


def test_bulk_upsert_job_needs_an_external_id_field(tp: Emulator, sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.bulk2.CL_Touchpoint__c._client.create_job("upsert", external_id_field="Channel__c")
    assert caught.value.content == [
        {
            "message": "InvalidJob : Field name provided, Channel__c does not match an External "
            f"ID, Salesforce Id, or indexed field for {OBJECT_NAME}",
            "errorCode": "INVALIDJOB",
        }
    ]


def test_bulk_delete_job_reports_each_id(tp: Emulator, sf: Salesforce) -> None:
    ids = [r["id"] for r in upsert(sf, touch("k1"), touch("k2"))]
    tp.delete(OBJECT_NAME, ids[1])
    never = tp.new_id(tp.key_prefixes[OBJECT_NAME])
    (job,) = sf.bulk2.CL_Touchpoint__c.delete(
        records=[{"Id": ids[0]}, {"Id": ids[1]}, {"Id": never}, {"Id": "bad"}], wait=0
    )
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (4, 3)
    ok = bulk_rows(sf.bulk2.CL_Touchpoint__c.get_successful_records(job["job_id"]))
    assert [(r["sf__Id"], r["sf__Created"], r["Id"]) for r in ok] == [(ids[0], "false", ids[0])]
    failed = bulk_rows(sf.bulk2.CL_Touchpoint__c.get_failed_records(job["job_id"]))
    assert [r["sf__Error"] for r in failed] == [
        "ENTITY_IS_DELETED:entity is deleted: --",
        "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id: --",
        "MALFORMED_ID:bad id bad: --",
    ]
    assert tp.record(OBJECT_NAME, ids[0])["IsDeleted"] is True


def test_bulk_delete_job_takes_only_the_id_column(tp: Emulator, sf: Salesforce) -> None:
    client = sf.bulk2.CL_Touchpoint__c._client
    job = client.create_job("delete")
    never = tp.new_id(tp.key_prefixes[OBJECT_NAME])
    client.upload_job_data(job["id"], f"Id,{EXTERNAL_ID}\n{never},k1\n")
    client.close_job(job["id"])
    client.get_job(job["id"], False)
    done = client.get_job(job["id"], False)
    assert done["state"] == "Failed"
    assert done["errorMessage"] == "InvalidBatch : The 'delete' batch must contain only 'Id'"


def test_new_endpoints_share_limits_auth_and_faults(tp: Emulator, sf: Salesforce) -> None:
    tp.inject("503", path_prefix="/services/data/v59.0/composite/sobjects/")
    with pytest.raises(SalesforceGeneralError) as unavailable:
        upsert(sf, touch("k1"))
    assert unavailable.value.status == 503
    upsert(sf, touch("k1"))
    tp.daily_limit = tp.api_used
    never = tp.new_id(tp.key_prefixes[OBJECT_NAME])
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.restful("composite/sobjects", method="DELETE", params={"ids": never})
    assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    tp.daily_limit = 15000
    tp.expire_session()
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.CL_Touchpoint__c.upsert(f"{EXTERNAL_ID}/k2", {"Channel__c": "Email"})
    assert expired.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
