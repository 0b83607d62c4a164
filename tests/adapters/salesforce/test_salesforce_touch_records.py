"""SalesforceTouchRecords: CL_Touchpoint__c through simple-salesforce against the emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from adapters.salesforce.adapter import SalesforceCrm
from adapters.salesforce.emulator import Emulator
from adapters.salesforce.touch_records import SalesforceTouchRecords
from connector.kernel.errors import ConfigError
from connector.kernel.records import TouchRecordDelete, TouchRecordResult, TouchRecordWrite

COLLECTION_UPSERT = "/composite/sobjects/CL_Touchpoint__c/Touchpoint_Key__c"
OBJECT = "CL_Touchpoint__c"


def people(emu: Emulator) -> tuple[list[str], list[str], list[str]]:
    """The sample org's unconverted leads, contacts and opportunities."""
    leads = [i for i, r in emu.records["Lead"].items() if not r["IsConverted"]]
    return leads, list(emu.records["Contact"]), list(emu.records["Opportunity"])


def record(
    key: str, contact: str, deal: str | None = None, **values: str | None
) -> TouchRecordWrite:
    fields = {"Channel__c": "Email", "Occurred_At__c": "2026-11-02T10:00:00.000Z", **values}
    return TouchRecordWrite(key, fields, {"Lead": None, "Contact": contact, "Opportunity": deal})


def by_key(emu: Emulator) -> dict[str, dict[str, object]]:
    return {r["Touchpoint_Key__c"]: r for r in emu.records[OBJECT].values() if not r["IsDeleted"]}


@pytest.fixture
def writer(emu: Emulator, make_adapter: Callable[..., SalesforceCrm]) -> SalesforceTouchRecords:
    emu.install_touchpoint_object()
    return SalesforceTouchRecords(make_adapter())


def test_preflight_says_what_is_missing(
    emu: Emulator, make_adapter: Callable[..., SalesforceCrm]
) -> None:
    writer = SalesforceTouchRecords(make_adapter())
    with pytest.raises(ConfigError) as absent:
        writer.schema(create=True)
    message = str(absent.value)
    assert "no CL_Touchpoint__c object" in message
    assert "sf project deploy start --source-dir force-app" in message
    assert "Closedloop_Touchpoints" in message
    assert emu.requests("POST") == [] and emu.requests("PATCH") == []  # deploys nothing

    emu.install_touchpoint_object(omit=["Contact__c", "Touchpoint_Key__c", "Credit_Linear__c"])
    with pytest.raises(ConfigError) as partial:
        SalesforceTouchRecords(make_adapter()).schema(create=True)
    assert "Touchpoint_Key__c (Text(80), External ID" in str(partial.value)
    assert "Contact__c (lookup to Contact)" in str(partial.value)
    assert "Lead__c" not in str(partial.value) and "Opportunity__c" not in str(partial.value)


def test_preflight_describes_the_fields_a_mapping_may_fill(writer: SalesforceTouchRecords) -> None:
    schema = writer.schema(create=True)
    assert schema.object == OBJECT and schema.links == ("Lead", "Contact", "Opportunity")
    assert schema.fields["Occurred_At__c"].type == "datetime"
    assert schema.fields["Credit_W_Shaped__c"].type == "number"
    assert schema.fields["Landing_Page__c"].length == 255
    assert "Touchpoint_Key__c" not in schema.fields and "Contact__c" not in schema.fields
    with pytest.raises(ConfigError, match="closedloop does not create Salesforce fields"):
        writer.create_fields([schema.fields["Channel__c"]], "closedloop")


def test_upsert_through_collections_creates_then_updates(
    emu: Emulator, writer: SalesforceTouchRecords
) -> None:
    _, contacts, deals = people(emu)
    records = [record(f"cl-p-{i:03d}", contacts[i % 5]) for i in range(450)]
    records.append(record("cl-o-1", contacts[0], deals[0], Credit_Linear__c="0.3333"))
    batches: list[list[TouchRecordResult]] = []
    results = writer.upsert(records, on_batch=batches.append)

    assert [len(b) for b in batches] == [200, 200, 51]
    assert len(emu.requests("PATCH", COLLECTION_UPSERT)) == 3
    assert all(r.ok and r.crm_id for r in results)
    stored = by_key(emu)
    assert len(stored) == 451
    assert stored["cl-p-007"]["Contact__c"] == contacts[2] and stored["cl-p-007"]["Lead__c"] is None
    assert stored["cl-o-1"]["Opportunity__c"] == deals[0]
    assert stored["cl-o-1"]["Credit_Linear__c"] == pytest.approx(0.3333)
    assert stored["cl-o-1"]["Occurred_At__c"].startswith("2026-11-02T10:00:00")

    moved = record("cl-p-007", contacts[3], Channel__c="Paid Search", Landing_Page__c=None)
    (again,) = writer.upsert([moved])
    assert again.ok and again.crm_id == results[7].crm_id  # the same record, updated
    after = by_key(emu)["cl-p-007"]
    assert (after["Channel__c"], after["Contact__c"]) == ("Paid Search", contacts[3])
    assert len(by_key(emu)) == 451


def test_per_record_errors_fail_alone(emu: Emulator, writer: SalesforceTouchRecords) -> None:
    _, contacts, _ = people(emu)
    emu.delete("Contact", contacts[1])
    results = writer.upsert(
        [
            record("cl-p-ok", contacts[0]),
            record("cl-p-gone", contacts[1]),
            record("cl-p-long", contacts[0], Channel__c="x" * 300),
            record("cl-p-nan", contacts[0], Credit_Linear__c="not a number"),
        ]
    )
    outcome = {r.key: (r.ok, r.error.split(":")[0]) for r in results}
    assert outcome == {
        "cl-p-ok": (True, ""),
        "cl-p-gone": (False, "ENTITY_IS_DELETED"),
        "cl-p-long": (False, "STRING_TOO_LONG"),
        "cl-p-nan": (False, "Credit_Linear__c"),  # refused before sending: a JSON type error
    }
    assert set(by_key(emu)) == {"cl-p-ok"}


def test_above_the_bulk_threshold_upserts_and_deletes_with_bulk_jobs(
    emu: Emulator, make_adapter: Callable[..., SalesforceCrm]
) -> None:
    emu.install_touchpoint_object()
    emu.bulk_polls_in_progress = 0
    writer = SalesforceTouchRecords(make_adapter(bulk_threshold=10, bulk_poll_interval=0.01))
    _, contacts, _ = people(emu)
    keys = [f"cl-p-{i:02d}" for i in range(25)]
    results = writer.upsert([record(k, contacts[0]) for k in keys])
    assert all(r.ok for r in results) and len(by_key(emu)) == 25
    assert emu.requests("PATCH", COLLECTION_UPSERT) == []
    (job,) = emu.jobs.values()
    assert (job.operation, job.external_id_field) == ("upsert", "Touchpoint_Key__c")
    ids = {r.key: r.crm_id for r in results}
    assert by_key(emu)["cl-p-03"]["Id"] == ids["cl-p-03"]

    gone = writer.delete([TouchRecordDelete(k, ids[k]) for k in keys[:12]])
    assert all(r.ok for r in gone)
    assert sorted(by_key(emu)) == keys[12:]
    assert [j.operation for j in emu.jobs.values()] == ["upsert", "delete"]


def test_delete_by_id_in_collections_and_already_gone_is_fine(
    emu: Emulator, writer: SalesforceTouchRecords
) -> None:
    _, contacts, _ = people(emu)
    made = writer.upsert([record(f"cl-p-{i}", contacts[0]) for i in range(3)])
    emu.delete(OBJECT, made[0].crm_id or "")  # someone deleted it in Salesforce already
    results = writer.delete(
        [TouchRecordDelete(r.key, r.crm_id) for r in made] + [TouchRecordDelete("cl-p-x", None)]
    )
    assert [r.ok for r in results] == [True, True, True, True]
    assert by_key(emu) == {}
    (call,) = emu.requests("DELETE", "/composite/sobjects")
    assert call.arg("ids") == ",".join(r.crm_id or "" for r in made)


def test_read_by_key_is_case_sensitive(emu: Emulator, writer: SalesforceTouchRecords) -> None:
    _, contacts, deals = people(emu)
    writer.upsert([record("cl-o-Ab", contacts[0], deals[0]), record("cl-o-ab", contacts[1])])
    found = writer.read(["cl-o-Ab", "cl-o-none"], ["Channel__c", "Occurred_At__c"])
    assert list(found) == ["cl-o-Ab"]
    state = found["cl-o-Ab"]
    assert state.links == {"Lead": None, "Contact": contacts[0], "Opportunity": deals[0]}
    assert state.values["Channel__c"] == "Email"
    assert state.values["Occurred_At__c"] is not None


def test_the_emulator_matches_keys_as_they_are_now(
    emu: Emulator, writer: SalesforceTouchRecords, sf: Any
) -> None:
    """The emulator's key index follows edits and deletes: an upsert matches the record that
    holds the key now, never one that held it before."""
    _, contacts, _ = people(emu)
    (first,) = writer.upsert([record("cl-p-a", contacts[0])])
    sf.CL_Touchpoint__c.update(first.crm_id, {"Touchpoint_Key__c": "cl-p-b"})
    (again,) = writer.upsert([record("cl-p-a", contacts[1])])
    assert again.crm_id != first.crm_id  # the key moved away: a new record
    assert set(by_key(emu)) == {"cl-p-a", "cl-p-b"}
    emu.delete(OBJECT, first.crm_id or "")
    (third,) = writer.upsert([record("cl-p-b", contacts[2])])
    assert third.crm_id not in {first.crm_id, again.crm_id}
    assert by_key(emu)["cl-p-b"]["Contact__c"] == contacts[2]
