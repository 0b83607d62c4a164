"""The same suite for every registered adapter, against its emulator: tests for free.

A new adapter inherits these by adding its registry line and an emulator with ``seed_sample``
and ``adapter_settings``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, func, select

import adapters
from connector.kernel.errors import ConfigError
from connector.kernel.records import RecordUpdate
from connector.kernel.timeutil import zone
from connector.run.extract import store_touchpoints
from connector.store import models
from connector.store.database import make_engine

SINCE = datetime(2026, 9, 1, tzinfo=UTC)
EMULATED_SOURCES = [k for k in adapters.SOURCES if adapters.has_emulator(k)]


def start(kind: str) -> Any:
    emu = adapters.emulator_class(kind)()
    emu.seed_sample()
    return emu.start()


@pytest.fixture(params=EMULATED_SOURCES)
def source(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    emu = start(request.param)
    cls = adapters.source_class(request.param)
    yield emu, cls(cls.Settings(**emu.adapter_settings()))
    emu.stop()


@pytest.fixture(params=list(adapters.CRMS))
def crm(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    emu = start(request.param)
    cls = adapters.crm_class(request.param)
    yield emu, cls(cls.Settings(**emu.adapter_settings()))
    emu.stop()


def read_all(adapter: Any) -> tuple[list[Any], list[Any]]:
    return list(adapter.touchpoints(SINCE)), list(adapter.spend(SINCE))


def test_source_records_are_aware_and_keys_unique(source: tuple[Any, Any]) -> None:
    _, adapter = source
    touchpoints, spend = read_all(adapter)
    assert touchpoints or spend, "seed_sample must give the adapter something to read"
    assert all(
        t.occurred_at.tzinfo is not None and t.occurred_at.utcoffset() == timedelta(0)
        for t in touchpoints
    )
    assert len({(t.source, t.key) for t in touchpoints}) == len(touchpoints)
    assert len({(s.platform, s.account, s.campaign_id, s.day) for s in spend}) == len(spend)


def test_rereading_from_cursor_adds_no_duplicates(source: tuple[Any, Any], tmp_path: Any) -> None:
    _, adapter = source
    engine = make_engine(f"sqlite:///{tmp_path}/s.db")
    counts = []
    for _ in range(2):
        with Session(engine) as session:
            store_touchpoints(session, adapter.touchpoints(SINCE))
            session.commit()
            counts.append(session.exec(select(func.count()).select_from(models.Touchpoint)).one())
    engine.dispose()
    assert counts[0] == counts[1]


def test_source_bad_token_is_config_error(source: tuple[Any, Any]) -> None:
    emu, adapter = source
    cls = type(adapter)
    settings = emu.adapter_settings(valid_token=False)
    bad = cls(cls.Settings(**settings))
    with pytest.raises(ConfigError) as info:
        read_all(bad)
    for value in settings.values():
        if isinstance(value, str) and ("invalid" in value or "bad" in value):
            assert value not in str(info.value)


def test_source_429_is_retried(source: tuple[Any, Any]) -> None:
    emu, adapter = source
    expected = read_all(adapter)
    emu.clear_log()
    emu.inject("429", count=2)
    assert read_all(adapter) == expected
    assert len(emu.log) >= 3


def test_crm_contacts_are_aware_and_unique(crm: tuple[Any, Any]) -> None:
    _, adapter = crm
    records = list(adapter.contacts(None, []))
    assert records
    assert len({(r.object, r.crm_id) for r in records}) == len(records)
    assert all(r.created_at.tzinfo is not None and r.updated_at.tzinfo is not None for r in records)
    deals = list(adapter.deals(None))
    assert all(d.created_at.tzinfo is not None for d in deals)


def test_crm_knows_its_time_zone_and_dates_closes_in_it(crm: tuple[Any, Any]) -> None:
    _, adapter = crm
    tz = zone(adapter.time_zone())
    closed = [d for d in adapter.deals(None) if d.is_closed]
    assert closed and all(d.close_date is not None and d.stage_label for d in closed)
    assert all(
        d.closed_at is None or d.closed_at.astimezone(tz).date() == d.close_date for d in closed
    )


def test_crm_bad_token_is_config_error(crm: tuple[Any, Any]) -> None:
    emu, adapter = crm
    cls = type(adapter)
    with pytest.raises(ConfigError):
        list(cls(cls.Settings(**emu.adapter_settings(valid_token=False))).contacts(None, []))


def test_crm_429_is_retried(crm: tuple[Any, Any]) -> None:
    emu, adapter = crm
    first = list(adapter.contacts(None, []))
    emu.inject("429", count=2)
    assert [r.crm_id for r in adapter.contacts(None, [])] == [r.crm_id for r in first]


def _writable_text_field(adapter: Any, obj: str) -> str:
    for spec in adapter.describe_fields(obj).values():
        lowered = spec.name.lower()
        if (
            spec.type == "string"
            and spec.updateable
            and not spec.picklist
            and "email" not in lowered
            and not lowered.endswith("id")
        ):
            return str(spec.name)
    raise AssertionError(f"{obj} has no writable text field")


def test_crm_write_roundtrip_and_empty_write_sends_nothing(crm: tuple[Any, Any]) -> None:
    emu, adapter = crm
    record = next(iter(adapter.contacts(None, [])))
    field = _writable_text_field(adapter, record.object)
    emu.clear_log()
    assert adapter.write(record.object, []) == []
    assert emu.log == []
    results = adapter.write(record.object, [RecordUpdate(record.crm_id, {field: "Contract test"})])
    assert [r.ok for r in results] == [True]
    values = adapter.read_values(record.object, [record.crm_id], [field])
    assert values[record.crm_id][field] == "Contract test"


def test_crm_names_the_records_modified_since_a_moment(crm: tuple[Any, Any]) -> None:
    """A write (closedloop's or a person's) moves the record's modification time; records left
    alone are not named."""
    _, adapter = crm
    records = list(adapter.contacts(None, []))
    record = records[0]
    field = _writable_text_field(adapter, record.object)
    moment = datetime.now(UTC)
    assert adapter.modified_since(record.object, moment) == set()
    adapter.write(record.object, [RecordUpdate(record.crm_id, {field: "Edited since"})])
    assert adapter.modified_since(record.object, moment) == {record.crm_id}
    assert adapter.modified_since(record.object, datetime.now(UTC) + timedelta(seconds=1)) == set()


def test_crm_counts_the_records_last_modified_in_a_window(crm: tuple[Any, Any]) -> None:
    """Whole seconds, start included, end not: the window a re-sync checks without reading it."""
    _, adapter = crm
    record = next(iter(adapter.contacts(None, [])))
    field = _writable_text_field(adapter, record.object)
    start = datetime.now(UTC).replace(microsecond=0)
    assert adapter.count_modified(record.object, start, start + timedelta(hours=1)) == 0
    adapter.write(record.object, [RecordUpdate(record.crm_id, {field: "Counted"})])
    (after,) = [r for r in adapter.contacts(start, []) if r.crm_id == record.crm_id]
    stamp = after.updated_at.replace(microsecond=0)
    assert adapter.count_modified(record.object, stamp, stamp + timedelta(seconds=1)) == 1
    assert adapter.count_modified(record.object, stamp - timedelta(hours=1), stamp) == 0
