"""HubSpotTouchRecords: the touchpoints custom object via hubspot-api-client on the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import connector.kernel.retry
from adapters.hubspot.adapter import HubSpotCrm, HubSpotSettings
from adapters.hubspot.emulator import Emulator
from adapters.hubspot.touch_records import HubSpotTouchRecords
from connector.kernel.errors import Unavailable
from connector.kernel.records import (
    FieldSpec,
    TouchRecordDelete,
    TouchRecordResult,
    TouchRecordWrite,
)

DAY = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connector.kernel.retry, "BACKOFF_SCALE", 0.01)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(rate_limit=None) as server:
        yield server


def writer_on(emu: Emulator) -> HubSpotTouchRecords:
    settings = {**emu.adapter_settings(), "rate_limit_share": 1.0}
    return HubSpotTouchRecords(HubSpotCrm(HubSpotSettings(**settings)))


@pytest.fixture
def writer(emu: Emulator) -> Iterator[HubSpotTouchRecords]:
    made = writer_on(emu)
    yield made
    made.crm.close()


def contacts(emu: Emulator, n: int) -> list[str]:
    return [emu.add_contact({"email": f"p{i}@x.com"}, created_at=DAY) for i in range(n)]


def record(
    key: str, contact: str | None, deal: str | None = None, **values: Any
) -> TouchRecordWrite:
    fields = {"channel": "Email", "occurred_at": "2026-11-02T10:00:00.000Z", **values}
    return TouchRecordWrite(key, fields, {"contacts": contact, "deals": deal})


def linked(emu: Emulator, tp_id: str, to: str) -> list[str]:
    return list(emu.associations.get(("touchpoints", to), {}).get(tp_id, {}))


def test_schema_is_created_once_on_the_first_sync(
    emu: Emulator, writer: HubSpotTouchRecords
) -> None:
    planned = writer.schema(create=False)  # doctor, dry run: nothing is created
    assert planned.pending and "credit_linear" in planned.fields
    assert emu.schemas == {} and emu.requests("POST") == []

    schema = writer.schema(create=True)
    assert not schema.pending and schema.object == "touchpoints"
    assert schema.fields["occurred_at"].type == "datetime"
    assert schema.links == ("contacts", "deals")
    assert len(emu.requests("POST", "/schemas")) == 1
    writer.schema(create=True)
    assert len(emu.requests("POST", "/schemas")) == 1  # found, not created again

    writer.create_fields(
        [FieldSpec("credit_markov", "number", label="Credit (markov)")], "closedloop"
    )
    assert "credit_markov" in writer.schema(create=True).fields


def test_a_portal_without_custom_objects_is_unavailable_not_an_error() -> None:
    with Emulator(custom_objects=False) as emu:
        writer = writer_on(emu)
        for create in (False, True):
            with pytest.raises(Unavailable) as info:
                writer.schema(create=create)
            assert "Enterprise" in str(info.value) and "skipped" in str(info.value)
        writer.crm.close()


def test_upsert_in_hundreds_links_in_one_call_per_object(
    emu: Emulator, writer: HubSpotTouchRecords
) -> None:
    people = contacts(emu, 5)
    deal = emu.add_deal({"dealname": "D", "dealstage": "closedwon"}, DAY, people[:1])
    writer.schema(create=True)
    records = [record(f"cl-p-{i:03d}", people[i % 5]) for i in range(240)]
    records += [record("cl-o-1", people[0], deal, credit_linear="0.5000")]
    batches: list[list[TouchRecordResult]] = []
    results = writer.upsert(records, on_batch=batches.append)

    assert all(r.ok and r.crm_id for r in results)
    assert [len(b) for b in batches] == [241]  # reported once the group is linked
    assert [len(r.json()["inputs"]) for r in emu.requests("POST", "/batch/upsert")] == [
        100,
        100,
        41,
    ]
    to_contacts = emu.requests("POST", "/crm/v4/associations/")
    assert [r.path.rsplit("/", 4)[-3:] for r in to_contacts] == [
        ["contacts", "batch", "create"], ["deals", "batch", "create"],
    ]  # fmt: skip
    ids = {r.key: r.crm_id or "" for r in results}
    assert linked(emu, ids["cl-p-007"], "contacts") == [people[2]]
    assert linked(emu, ids["cl-o-1"], "deals") == [deal]
    assert emu.record("touchpoints", ids["cl-o-1"])["credit_linear"] == "0.5000"

    emu.clear_log()
    moved = TouchRecordWrite(
        "cl-p-007", {"channel": "Paid Search"}, {"contacts": people[3], "deals": None},
        old_links={"contacts": people[2], "deals": None},
    )  # fmt: skip
    unchanged = TouchRecordWrite(
        "cl-p-008", {"channel": "Email"}, {"contacts": people[3], "deals": None},
        old_links={"contacts": people[3], "deals": None},
    )  # fmt: skip
    assert all(r.ok for r in writer.upsert([moved, unchanged]))
    assert linked(emu, ids["cl-p-007"], "contacts") == [people[3]]
    assert linked(emu, ids["cl-p-008"], "contacts") == [people[3]]
    assert len(emu.requests("POST", "/associations/")) == 2  # one archive, one create


def test_a_deleted_contact_fails_its_record_alone(
    emu: Emulator, writer: HubSpotTouchRecords
) -> None:
    people = contacts(emu, 3)
    emu.delete_contact(people[1])
    results = writer.upsert([record(f"cl-p-{i}", p) for i, p in enumerate(people)])
    assert [r.ok for r in results] == [True, False, True]
    assert "no longer in HubSpot" in results[1].error
    assert linked(emu, results[2].crm_id or "", "contacts") == [people[2]]


def test_archive_in_hundreds_and_read_by_key(emu: Emulator, writer: HubSpotTouchRecords) -> None:
    people = contacts(emu, 2)
    made = writer.upsert([record(f"cl-p-{i:03d}", people[i % 2]) for i in range(150)])
    found = writer.read(["cl-p-001", "cl-p-nope"], ["channel", "occurred_at"])
    assert list(found) == ["cl-p-001"]
    assert found["cl-p-001"].links == {"contacts": people[1], "deals": None}
    assert found["cl-p-001"].values == {
        "channel": "Email", "occurred_at": "2026-11-02T10:00:00.000Z",
    }  # fmt: skip

    results = writer.delete([TouchRecordDelete(r.key, r.crm_id) for r in made])
    assert all(r.ok for r in results)
    assert [len(r.json()["inputs"]) for r in emu.requests("POST", "/batch/archive")] == [100, 50]
    assert all(o.archived for o in emu.objects["touchpoints"].values())
    assert writer.read(["cl-p-001"], ["channel"]) == {}


def test_the_emulator_matches_keys_as_they_are_now(
    emu: Emulator, writer: HubSpotTouchRecords
) -> None:
    """The emulator's unique-value index follows edits and archives; a read by the unique
    property finds the live record, not an archived one that held the value before."""
    people = contacts(emu, 1)
    (first,) = writer.upsert([record("cl-p-a", people[0])])
    emu.edit("touchpoints", first.crm_id or "", touchpoint_key="cl-p-b")
    (again,) = writer.upsert([record("cl-p-a", people[0])])
    assert again.crm_id != first.crm_id
    emu.delete("touchpoints", first.crm_id or "")  # archived: its key is free again
    (third,) = writer.upsert([record("cl-p-b", people[0])])
    assert third.crm_id not in {first.crm_id, again.crm_id}
    assert writer.read(["cl-p-b"], ["channel"])["cl-p-b"].crm_id == third.crm_id
