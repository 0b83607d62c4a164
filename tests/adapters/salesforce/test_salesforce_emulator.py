"""The emulator speaks Salesforce's wire format: checked with the real simple-salesforce client."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.login import SalesforceLogin

from adapters.salesforce.emulator import Emulator, id18


def _contacts(emu: Emulator) -> list[str]:
    return sorted(emu.records["Contact"])


def _a_converted_lead(emu: Emulator) -> str:
    return next(i for i, r in emu.records["Lead"].items() if r["IsConverted"])


def test_ids_are_18_characters_with_key_prefix_and_checksum(emu: Emulator) -> None:
    lead = next(iter(emu.records["Lead"]))
    assert len(lead) == 18 and lead.startswith("00Q")
    assert id18("001A0000006Vm9r") == "001A0000006Vm9rIAC"  # a documented Salesforce example
    assert {i[:3] for i in emu.records["OpportunityContactRole"]} == {"00K"}


def test_query_pages_with_root_relative_next_records_url(emu: Emulator, sf: Salesforce) -> None:
    emu.page_size = 7
    first = sf.query("SELECT Id FROM Lead ORDER BY Id")
    assert first["totalSize"] == 30 and first["done"] is False and len(first["records"]) == 7
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    emu.clear_log()
    ids = [r["Id"] for r in sf.query_all_iter("SELECT Id FROM Lead ORDER BY Id")]
    assert ids == sorted(emu.records["Lead"])
    pages = emu.requests("GET", "/query/")
    assert len(pages) == 5 and pages[1].path.endswith("-7") and pages[4].path.endswith("-28")


def test_query_batch_size_header_is_clamped_to_200(emu: Emulator, sf: Salesforce) -> None:
    for i in range(230):
        emu.add_record("Account", {"Name": f"Bulk {i}"})
    result = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=50"})
    assert len(result["records"]) == 200 and result["totalSize"] == 260


def test_query_all_includes_deleted_records(emu: Emulator, sf: Salesforce) -> None:
    lead = next(iter(emu.records["Lead"]))
    emu.delete("Lead", lead)
    assert lead not in {r["Id"] for r in sf.query_all("SELECT Id FROM Lead")["records"]}
    with_deleted = sf.query_all("SELECT Id, IsDeleted FROM Lead", include_deleted=True)
    assert {r["Id"]: r["IsDeleted"] for r in with_deleted["records"]}[lead] is True


def test_describe_lists_standard_and_custom_fields(sf: Salesforce) -> None:
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    source = fields["LeadSource"]
    assert source["type"] == "picklist" and source["restrictedPicklist"] is True
    assert {"value": "Paid Search", "label": "Paid Search", "active": True}.items() <= next(
        p for p in source["picklistValues"] if p["value"] == "Paid Search"
    ).items()
    assert fields["IsConverted"]["updateable"] is False
    assert (
        fields["GA_Client_ID__c"]["custom"] is True and fields["GA_Client_ID__c"]["length"] == 255
    )
    assert fields["Touch_Count__c"]["type"] == "double"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Nope__c.describe()


def test_sobject_get_and_patch(emu: Emulator, sf: Salesforce) -> None:
    contact = _contacts(emu)[0]
    before = sf.Contact.get(contact)
    assert before["Id"] == contact and before["attributes"]["type"] == "Contact"
    assert sf.Contact.update(contact, {"LeadSource": "Display", "Touch_Count__c": 2}) == 204
    after = emu.record("Contact", contact)
    assert after["LeadSource"] == "Display" and after["Touch_Count__c"] == 2.0
    assert after["SystemModstamp"] > before["SystemModstamp"]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.update(contact, {"LeadSource": "Carrier pigeon"})
    assert caught.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get("003000000000000AAA")


def test_collections_report_each_record_in_input_order(emu: Emulator, sf: Salesforce) -> None:
    contacts = _contacts(emu)
    emu.delete("Contact", contacts[1])
    records = [
        {"id": contacts[0], "LeadSource": "Paid Social"},
        {"id": contacts[1], "LeadSource": "Web"},
        {"id": contacts[2], "Nope__c": "x"},
        {"id": contacts[3], "LeadSource": "Carrier pigeon"},
        {"id": contacts[4], "UTM_Source__c": "x" * 256},
        {"id": _a_converted_lead(emu), "_type": "Lead", "LeadSource": "Web"},
        {"id": contacts[5], "Name": "Renamed"},
        {"id": contacts[6], "UTM_Source__c": None},
    ]
    body = {
        "allOrNone": False,
        "records": [{"attributes": {"type": r.pop("_type", "Contact")}, **r} for r in records],
    }
    results = sf.restful("composite/sobjects", method="PATCH", json=body)
    codes = [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]
    assert codes == [
        None,
        "ENTITY_IS_DELETED",
        "INVALID_FIELD",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "STRING_TOO_LONG",
        "CANNOT_UPDATE_CONVERTED_LEAD",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        None,
    ]
    assert [r["success"] for r in results] == [c is None for c in codes]
    assert results[0]["id"] == contacts[0]
    assert results[3]["errors"][0]["fields"] == ["LeadSource"]
    assert emu.record("Contact", contacts[0])["LeadSource"] == "Paid Social"


def test_collections_wrong_json_type_fails_the_whole_request(emu: Emulator, sf: Salesforce) -> None:
    contacts = _contacts(emu)
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "id": contacts[0], "LeadSource": "Display"},
            {"attributes": {"type": "Contact"}, "id": contacts[1], "Touch_Count__c": "abc"},
        ],
    }
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="PATCH", json=body)
    assert caught.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert emu.record("Contact", contacts[0])["LeadSource"] != "Display"


def test_collections_limit_and_all_or_none(emu: Emulator, sf: Salesforce) -> None:
    contacts = _contacts(emu)
    too_many = [{"attributes": {"type": "Contact"}, "id": contacts[0]}] * 201
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="PATCH", json={"records": too_many})
    assert caught.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    body = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Contact"}, "id": contacts[0], "LeadSource": "Display"},
            {"attributes": {"type": "Contact"}, "id": contacts[1], "LeadSource": "Nope"},
        ],
    }
    results = sf.restful("composite/sobjects", method="PATCH", json=body)
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert emu.record("Contact", contacts[0])["LeadSource"] != "Display"


def test_bulk2_update_through_the_client(emu: Emulator, sf: Salesforce) -> None:
    contacts = _contacts(emu)
    emu.edit("Contact", contacts[0], UTM_Source__c="google")
    result = sf.bulk2.Contact.update(
        records=[
            {"Id": contacts[0], "UTM_Source__c": "#N/A", "LeadSource": "Email"},
            {"Id": contacts[1], "UTM_Source__c": "newsletter", "LeadSource": "Carrier pigeon"},
            {"Id": "003000000000000AAA", "UTM_Source__c": "x", "LeadSource": "Web"},
        ],
        wait=0,
    )
    (job,) = result
    assert job["numberRecordsProcessed"] == 3 and job["numberRecordsFailed"] == 2
    assert emu.record("Contact", contacts[0])["UTM_Source__c"] is None  # #N/A clears
    assert emu.record("Contact", contacts[0])["LeadSource"] == "Email"
    ok = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_successful_records(job["job_id"]))))
    assert [(r["sf__Id"], r["sf__Created"]) for r in ok] == [(contacts[0], "false")]
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_failed_records(job["job_id"]))))
    assert [r["Id"] for r in failed] == [contacts[1], "003000000000000AAA"]
    assert failed[0]["sf__Error"].startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:")
    assert failed[0]["sf__Error"].endswith(":LeadSource --")


def test_bulk2_job_states_and_failed_job(emu: Emulator, sf: Salesforce) -> None:
    client = sf.bulk2.Contact._client
    job = client.create_job("update")
    assert job["state"] == "Open" and job["id"].startswith("750")
    client.upload_job_data(job["id"], "Id,Nope__c\n003000000000000AAA,x\n")
    assert client.close_job(job["id"])["state"] == "UploadComplete"
    assert client.get_job(job["id"], False)["state"] == "InProgress"
    done = client.get_job(job["id"], False)
    assert done["state"] == "Failed"
    assert done["errorMessage"] == "InvalidBatch : Field name not found : Nope__c"
    other = client.create_job("update")
    assert client.abort_job(other["id"], False)["state"] == "Aborted"
    with pytest.raises(SalesforceGeneralError) as caught:
        client.upload_job_data(other["id"], "Id\n003000000000000AAA\n")
    assert caught.value.status == 409


def test_limits_and_usage_header(emu: Emulator, sf: Salesforce) -> None:
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 14999}
    sf.query("SELECT Id FROM Account LIMIT 1")
    assert sf.api_usage["api-usage"].used == 2 and sf.api_usage["api-usage"].total == 15000


def test_daily_limit_and_permission_refusals(emu: Emulator, sf: Salesforce) -> None:
    emu.daily_limit = 1
    sf.query("SELECT Id FROM Account LIMIT 1")
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert caught.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    emu.daily_limit = 100
    emu.disable_api()
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert caught.value.content[0]["errorCode"] == "API_CURRENTLY_DISABLED"


def test_invalid_session_and_too_long_uri(emu: Emulator, sf: Salesforce) -> None:
    long_query = (
        "SELECT Id FROM Lead WHERE Id IN (" + ", ".join(["'00Q000000000000AAA'"] * 900) + ")"
    )
    with pytest.raises(SalesforceGeneralError) as too_long:
        sf.query(long_query)
    assert too_long.value.status == 414
    emu.expire_session()
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT Id FROM Lead")
    assert caught.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_soap_login_returns_a_fresh_session_and_instance(
    emu: Emulator, login_session: requests.Session
) -> None:
    session_id, instance = SalesforceLogin(
        username=emu.username,
        password=emu.password,
        security_token=emu.security_token,
        session=login_session,
    )
    assert instance == emu.url.removeprefix("http://") and session_id != emu.session_id
    sf = Salesforce(session_id=session_id, instance=instance, session=login_session)
    assert sf.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        SalesforceLogin(
            username=emu.username, password="wrong", security_token="tok", session=login_session
        )
    assert caught.value.code == "INVALID_LOGIN"


def test_client_password_flow_relogs_in_after_expiry(
    emu: Emulator, login_session: requests.Session
) -> None:
    sf = Salesforce(
        username=emu.username,
        password=emu.password,
        security_token=emu.security_token,
        session=login_session,
    )
    emu.expire_session()
    assert sf.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
    assert emu.logins == 2


@pytest.fixture(scope="module")
def rsa_pem() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_jwt_bearer_login_checks_signature_and_claims(
    emu: Emulator, login_session: requests.Session, rsa_pem: tuple[bytes, bytes]
) -> None:
    private, public = rsa_pem
    emu.jwt_public_key = public
    session_id, instance = SalesforceLogin(
        username=emu.username,
        consumer_key=emu.consumer_key,
        privatekey=private.decode(),
        session=login_session,
    )
    assert instance == emu.url.removeprefix("http://") and "!" in session_id
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    bad: list[Callable[[], object]] = [
        lambda: SalesforceLogin(
            username=emu.username, consumer_key=emu.consumer_key, privatekey=other.decode(),
            session=login_session,
        ),
        lambda: SalesforceLogin(
            username="someone@else.com", consumer_key=emu.consumer_key,
            privatekey=private.decode(), session=login_session,
        ),
        lambda: SalesforceLogin(
            username=emu.username, consumer_key="wrong", privatekey=private.decode(),
            session=login_session,
        ),
    ]  # fmt: skip
    codes = []
    for attempt in bad:
        with pytest.raises(SalesforceAuthenticationFailed) as caught:
            attempt()
        codes.append(caught.value.code)
    assert codes == ["invalid_grant", "invalid_grant", "invalid_client_id"]
