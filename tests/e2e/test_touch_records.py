"""Touchpoint records end to end, on HubSpot and Salesforce: the synthetic company through the
real clients into the emulators' custom objects; assertions read the emulators and the store."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlmodel import Session, select
from typer.testing import CliRunner

from connector.cli import app
from connector.demo.synthetic import Company, generate
from connector.kernel.errors import ConfigError
from connector.kernel.timeutil import parse_datetime
from connector.run.touch_plan import record_key
from connector.store import models
from connector.store.database import table_of
from connector.store.models import credit_model_code
from tests.e2e.crm_loop import Loop, start_loop

runner = CliRunner()


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=5, contacts=60, visits=600, deals=15)


@pytest.fixture(params=["hubspot", "salesforce"])
def loop(request: pytest.FixtureRequest, tmp_path: Path, company: Company) -> Iterator[Loop]:
    running = start_loop(tmp_path / "demo", request.param, company, touchpoint_records=True)
    yield running
    running.systems.stop()


def field(loop: Loop, name: str) -> str:
    """The CRM's name of a record field (the shipped mappings' names)."""
    names = dict(zip(("occurred_at", "channel", "source", "medium", "campaign", "landing_page",
                      "position", "credit_linear", "revenue_linear"),
                     loop.probe.touch_fields, strict=True))  # fmt: skip
    return names[name]


def person_link(record: dict[str, Any]) -> str | None:
    links = record["links"]
    return links.get("contacts") or links.get("Contact") or links.get("Lead")


def deal_link(record: dict[str, Any]) -> str | None:
    return record["links"].get("deals") or record["links"].get("Opportunity")


def store_rows(loop: Loop, sql: str) -> list[Any]:
    ctx = loop.context()
    try:
        with Session(ctx.engine) as session:
            return list(session.connection().exec_driver_sql(sql).all())
    finally:
        ctx.close()


def test_every_touch_and_every_deals_journey_is_a_record(loop: Loop) -> None:
    _, run = loop.sync()
    assert run.status == "succeeded", run.error
    records = loop.probe.touch_records()

    touches = store_rows(loop, """
        SELECT t.source, t.key, t.occurred_at, t.channel, c.crm_id FROM touchpoint t
        JOIN contact c ON c.id = t.contact_id WHERE NOT t.superseded""")  # fmt: skip
    people = {k: r for k, r in records.items() if k.startswith("cl-p-")}
    assert len(people) == len(touches) > 100
    for source, key, at, channel, crm_id in touches:
        record = people[record_key("p", source, key)]
        assert person_link(record) == crm_id and deal_link(record) is None
        assert record["fields"][field(loop, "channel")] == channel
        when = record["fields"][field(loop, "occurred_at")]
        assert parse_datetime(when) == parse_datetime(str(at))
    firsts = defaultdict(list)
    for record in people.values():
        if "First" in str(record["fields"][field(loop, "position")]):
            firsts[person_link(record)].append(record)
    assert all(len(found) == 1 for found in firsts.values())  # one first touch per person

    credits = store_rows(loop, f"""
        SELECT d.crm_id, t.source, t.key, cr.fraction, cr.amount FROM credit cr
        JOIN deal d ON d.id = cr.deal_id JOIN touchpoint t ON t.id = cr.touchpoint_id
        WHERE cr.model = {credit_model_code('linear')}""")  # fmt: skip
    by_deal: dict[str, float] = defaultdict(float)
    for deal, source, key, fraction, amount in credits:
        record = records[record_key("o", deal, source, key)]
        assert deal_link(record) == deal
        assert float(record["fields"][field(loop, "credit_linear")]) == pytest.approx(
            fraction, abs=5e-5
        )
        assert float(record["fields"][field(loop, "revenue_linear")]) == pytest.approx(
            amount, abs=0.005
        )
        by_deal[deal] += float(record["fields"][field(loop, "credit_linear")])
    assert len(by_deal) >= 10 and all(s == pytest.approx(1, abs=0.002) for s in by_deal.values())
    assert len(records) == len(people) + len(credits)

    ctx = loop.context()
    try:
        with Session(ctx.engine) as session:
            audit = session.exec(
                select(models.FieldWrite.record_id, models.FieldWrite.status).where(
                    models.FieldWrite.field == models.WHOLE_RECORD
                )
            ).all()
    finally:
        ctx.close()
    assert sorted(k for k, _ in audit) == sorted(records) and {s for _, s in audit} == {"ok"}
    show = runner.invoke(app, ["runs", "-c", str(loop.systems.config_path), "show", "1"])
    assert f"touchpoint records: ok {len(records)}" in show.output, show.output


def test_nothing_changed_sends_nothing_and_a_dry_run_lists_the_changes(loop: Loop) -> None:
    loop.sync()
    before = loop.probe.touch_records()
    loop.crm.clear_log()
    _, run = loop.sync()
    assert run.status == "succeeded"
    assert loop.probe.mutations() == []

    rules = loop.workdir / "mappings" / "channels.yaml"
    rules.write_text(
        rules.read_text().replace("- channel: Referral", "- channel: Partner Referral")
    )
    loop.crm.clear_log()
    result = runner.invoke(app, ["sync", "-c", str(loop.systems.config_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    referral = [k for k, r in before.items() if r["fields"][field(loop, "channel")] == "Referral"]
    assert referral
    assert (
        f"touchpoint records ({loop.probe.touch_object}): 0 to create, {len(referral)} to update"
        in result.output
    )
    assert "Partner Referral" in result.output
    assert loop.probe.mutations() == [] and loop.probe.touch_records() == before

    loop.crm.clear_log()
    loop.sync()
    after = loop.probe.touch_records()
    changed = {k for k in after if after[k] != before[k]}
    assert changed == set(referral)
    per_call = 100 if loop.probe.crm == "hubspot" else 200
    upserts = [r for r in loop.probe.touch_writes() if "associations" not in r.path]
    assert len(upserts) == -(-len(referral) // per_call)  # the minimum: full batches


def test_rollback_deletes_what_a_run_created_and_restores_what_it_changed(loop: Loop) -> None:
    _, first = loop.sync()
    created = loop.probe.touch_records()
    rules = loop.workdir / "mappings" / "channels.yaml"
    rules.write_text(
        rules.read_text().replace("- channel: Referral", "- channel: Partner Referral")
    )
    _, second = loop.sync()
    assert loop.probe.touch_records() != created
    config = str(loop.systems.config_path)

    undo = runner.invoke(app, ["rollback", str(second.id), "-c", config])
    assert undo.exit_code == 0, undo.output
    assert "restore" in undo.output and loop.probe.touch_records() == created

    kept = next(iter(created))
    loop.probe.edit_touch(kept, "Set by a rep")
    dry = runner.invoke(app, ["rollback", str(first.id), "-c", config, "--dry-run"])
    assert f"would delete {len(created) - 1} the run created" in dry.output, dry.output
    assert set(loop.probe.touch_records()) == set(created)
    undo = runner.invoke(app, ["rollback", str(first.id), "-c", config])
    assert undo.exit_code == 0, undo.output
    assert f"delete {len(created) - 1} the run created" in undo.output
    assert f"{kept}: changed since run {first.id}; left alone" in undo.output
    assert list(loop.probe.touch_records()) == [kept]


def test_a_touch_that_is_gone_loses_its_records(loop: Loop) -> None:
    """As when a CSV row is edited or a person forgotten: the touch leaves the store, and the
    next sync deletes its records in the CRM (and re-credits its deals' other records)."""
    loop.sync()
    source, key, touch_id = store_rows(loop, """
        SELECT t.source, t.key, t.id FROM touchpoint t JOIN credit c ON c.touchpoint_id = t.id
        WHERE t.source = 'ga4' ORDER BY t.occurred_at LIMIT 1""")[0]  # fmt: skip
    ctx = loop.context()
    try:
        with Session(ctx.engine) as session:
            tp, credit = table_of(models.Touchpoint), table_of(models.Credit)
            session.execute(delete(credit).where(credit.c.touchpoint_id == touch_id))
            session.execute(delete(tp).where(tp.c.id == touch_id))
            session.commit()
    finally:
        ctx.close()
    mine = {k for k in loop.probe.touch_records() if k == record_key("p", source, key)}
    assert mine
    _, run = loop.sync()
    assert run.status == "succeeded"
    after = loop.probe.touch_records()
    assert not mine & set(after)
    assert not any(k.endswith(record_key("o", "x", source, key)[5:]) for k in after)


def test_forget_deletes_the_persons_records_in_the_crm(loop: Loop, company: Company) -> None:
    loop.sync()
    records = loop.probe.touch_records()
    ctx = loop.context()
    try:
        from connector.run.touch_undo import person_ids

        person = next(
            p for p in company.people
            if any(person_link(r) in person_ids(ctx, p.email) for r in records.values())
        )  # fmt: skip
        ids = set(person_ids(ctx, person.email))
    finally:
        ctx.close()
    theirs = {k for k, r in records.items() if person_link(r) in ids}
    config = str(loop.systems.config_path)

    dry = runner.invoke(app, ["forget", "--email", person.email, "-c", config, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would delete {len(theirs)} touchpoint records" in dry.output
    assert loop.probe.touch_records() == records

    done = runner.invoke(app, ["forget", "--email", person.email.upper(), "-c", config])
    assert done.exit_code == 0, done.output
    assert (
        f"deleted {len(theirs)} touchpoint records ({loop.probe.touch_object}) in the CRM"
        in done.output
    )
    assert set(loop.probe.touch_records()) == set(records) - theirs


def test_salesforce_without_the_package_stops_before_the_first_write(
    tmp_path: Path, company: Company
) -> None:
    loop = start_loop(tmp_path / "sf", "salesforce", company, touchpoint_records=True)
    try:
        emu = loop.crm
        del emu.schema["CL_Touchpoint__c"]["Credit_Linear__c"]  # an older package
        emu.schema["CL_Touchpoint__c"]["Channel__c"]["type"] = "double"  # an admin's edit
        with pytest.raises(ConfigError) as partial:
            loop.sync()
        assert "salesforce.yaml:" in str(partial.value)
        assert "touchpoint_records.models.2.credit_field: CL_Touchpoint__c has no field " \
               "'Credit_Linear__c'" in str(partial.value)  # fmt: skip
        assert "touchpoint_records.fields.1.field: CL_Touchpoint__c.Channel__c is number, " \
               "expected enumeration or string" in str(partial.value)  # fmt: skip
        del emu.schema["CL_Touchpoint__c"]  # not deployed at all
        with pytest.raises(ConfigError, match="sf project deploy start"):
            loop.sync()
        assert loop.probe.mutations() == []  # no field write either
        doctor = runner.invoke(app, ["doctor", "-c", str(loop.systems.config_path)])
        assert doctor.exit_code == 1 and "Closedloop_Touchpoints" in doctor.output
    finally:
        loop.systems.stop()


def test_hubspot_without_custom_objects_skips_them_with_a_message(
    tmp_path: Path, company: Company
) -> None:
    loop = start_loop(tmp_path / "hs", "hubspot", company, touchpoint_records=True)
    try:
        config = str(loop.systems.config_path)
        ready = runner.invoke(app, ["doctor", "-c", config])
        assert "touchpoints object will be created on the first sync" in ready.output
        loop.crm.custom_objects = False  # a Professional portal
        doctor = runner.invoke(app, ["doctor", "-c", config])
        assert doctor.exit_code == 0, doctor.output
        assert "touchpoint records will be skipped" in doctor.output
        assert "Enterprise" in doctor.output
        result = runner.invoke(app, ["sync", "-c", config])
        assert result.exit_code == 0, result.output
        assert "skipped: the CRM cannot hold them" in result.output
        assert "Enterprise" in result.output  # the warning says why
        assert loop.probe.records() and any(loop.crm_state()[r][loop.probe.first]
                                            for r in loop.probe.records())  # fmt: skip
        assert loop.crm.objects.get("touchpoints") is None
    finally:
        loop.systems.stop()


def test_the_audit_holds_whole_records_before_and_after(loop: Loop) -> None:
    loop.sync()
    rules = loop.workdir / "mappings" / "channels.yaml"
    rules.write_text(
        rules.read_text().replace("- channel: Referral", "- channel: Partner Referral")
    )
    _, second = loop.sync()
    ctx = loop.context()
    try:
        with Session(ctx.engine) as session:
            rows = session.exec(
                select(models.FieldWrite).where(
                    models.FieldWrite.run_id == second.id,
                    models.FieldWrite.field == models.WHOLE_RECORD,
                )
            ).all()
    finally:
        ctx.close()
    assert rows
    for row in rows:
        old, new = json.loads(row.old_value or ""), json.loads(row.new_value or "")
        assert old["fields"][field(loop, "channel")] == "Referral"
        assert new["fields"][field(loop, "channel")] == "Partner Referral"
        assert old["links"] == new["links"] and row.crm_object == loop.probe.touch_object
