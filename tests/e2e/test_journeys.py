"""Journeys defined as a person would, end to end through the real clients and the emulators, on
SQLite and PostgreSQL: the whole close day in the CRM's time zone, a person created with their
first record, a source file as the truth for its rows, people who leave a journey, paths."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from connector.cli import app
from connector.demo.synthetic import Company, generate
from connector.store import models
from connector.store.database import make_engine
from tests.e2e.crm_loop import Loop, start_loop

runner = CliRunner()
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
LA = ZoneInfo("America/Los_Angeles")


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=31, contacts=60, visits=600, deals=20)


def running(tmp_path: Path, crm: str, company: Company, store_url: str) -> Loop:
    loop = start_loop(tmp_path / "demo", crm, company)
    loop.use_store(store_url)
    return loop


@pytest.fixture(params=["hubspot", "salesforce"])
def loop(
    request: pytest.FixtureRequest, tmp_path: Path, company: Company, store_url: str
) -> Iterator[Loop]:
    started = running(tmp_path, request.param, company, store_url)
    yield started
    started.systems.stop()


@pytest.fixture
def hubspot(tmp_path: Path, company: Company, store_url: str) -> Iterator[Loop]:
    started = running(tmp_path, "hubspot", company, store_url)
    yield started
    started.systems.stop()


@pytest.fixture
def salesforce(tmp_path: Path, company: Company, store_url: str) -> Iterator[Loop]:
    started = running(tmp_path, "salesforce", company, store_url)
    yield started
    started.systems.stop()


def edit_yaml(path: Path, change: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def sync(loop: Loop) -> models.SyncRun:
    _, run = loop.sync()
    assert run.status == "succeeded", run.error
    return run


def empty(value: Any) -> bool:
    return value in (None, "")  # HubSpot keeps a cleared property as ""


def test_the_close_day_counts_in_the_crms_time_zone(loop: Loop, store_url: str) -> None:
    probe, ga4 = loop.probe, loop.ga4
    probe.set_time_zone("America/Los_Angeles")
    day = (NOW - timedelta(days=20)).astimezone(LA).date()

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day + timedelta(days=days), time(hour, minute), LA)

    late = at(0, 23, 30)  # still the close day in Los Angeles, the next day in UTC
    assert late.astimezone(UTC).date() > day
    person = probe.add_person("close.day@example.com", at(-30, 9), "555.666")
    ga4.add_session("555.666", at(-31, 10), "google", "organic", "(organic)")
    ga4.add_session("555.666", late, "newsletter", "email", "close-offer")
    ga4.add_session("555.666", at(1, 9), "partner.io", "referral", "(referral)")  # the day after
    deal = probe.add_deal("Closed on the day", 9_000.0, person, at(-10, 9), at(0, 12))
    sync(loop)

    written = probe.deal_records()[deal]
    assert float(written[probe.deal_touch_count]) == 2
    assert written[probe.deal_mix] == "Email 50% · Organic Search 50%"

    # the report's period selects deals by their close date as the CRM shows it
    expected = sum(
        amount for amount, close_day in won_deals(loop) if close_day == day
    )  # fmt: skip
    body = json.loads(report(loop, "--format", "json", "--start", str(day), "--end", str(day)))
    assert round(body["totals"]["won_total"], 2) == round(expected, 2) >= 9_000


def test_top_channel_and_campaign_break_ties_by_one_rule(loop: Loop) -> None:
    """Two touches, half the credit each: the alphabetically first channel (Email) and the
    alphabetically first campaign (alpha-search, which is not Email's) are the deal's top."""
    probe, ga4 = loop.probe, loop.ga4
    person = probe.add_person("tied@example.com", NOW - timedelta(days=30), "444.333")
    ga4.add_session("444.333", NOW - timedelta(days=31), "newsletter", "email", "zeta-news")
    ga4.add_session("444.333", NOW - timedelta(days=29), "google", "cpc", "alpha-search")
    deal = probe.add_deal(
        "Tied", 1_000.0, person, NOW - timedelta(days=20), NOW - timedelta(days=10)
    )
    sync(loop)
    written = probe.deal_records()[deal]
    assert written[probe.deal_mix] == "Email 50% · Paid Search 50%"
    assert written[probe.deal_campaign] == "alpha-search"
    assert loop.probe.deal_channels()[deal] == "Email"


def won_deals(loop: Loop) -> list[tuple[float, date]]:
    """(amount in USD, close date in Los Angeles) of the won deals in USD, from the CRM."""
    out = []
    for deal in loop.probe.deal_records().values():
        if loop.probe.crm == "salesforce":
            if deal["IsWon"] and deal["CurrencyIsoCode"] == "USD":
                out.append((float(deal["Amount"]), date.fromisoformat(deal["CloseDate"])))
        elif deal["hs_is_closed_won"] == "true" and deal["deal_currency_code"] == "USD":
            closed = datetime.fromisoformat(deal["closedate"].replace("Z", "+00:00"))
            out.append((float(deal["amount"]), closed.astimezone(LA).date()))
    return out


def report(loop: Loop, *args: str) -> str:
    result = runner.invoke(app, ["report", "-c", str(loop.systems.config_path), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_converted_leads_creation_is_the_persons(salesforce: Loop, store_url: str) -> None:
    loop, emu, ga4 = salesforce, salesforce.crm, salesforce.ga4
    edit_yaml(loop.systems.config_path, lambda c: c["sync"]["models"].append("w_shaped"))
    t0 = NOW - timedelta(days=30)

    def lead(name: str, client_id: str, **utm: str) -> str:
        fields = {"FirstName": name, "LastName": "Lead", "Company": f"{name} Co",
                  "Email": f"{name.lower()}@example.com", "Status": "Open - Not Contacted",
                  "GA_Client_ID__c": client_id, **utm}  # fmt: skip
        return str(emu.add_record("Lead", fields, t0))

    # A lead after a paid search visit, an email visit, converted three days later.
    first = lead("Early", "321.654")
    ga4.add_session("321.654", t0 - timedelta(hours=2), "google", "cpc", "brand-search")
    ga4.add_session("321.654", t0 + timedelta(days=1), "newsletter", "email", "monthly-digest")
    contact = emu.convert_lead(first, at=t0 + timedelta(days=3))
    deal = loop.probe.add_deal(
        "Converted", 3_000.0, contact, t0 + timedelta(days=10), t0 + timedelta(days=20)
    )
    # A lead whose form captured its UTMs: the form touch happened when the lead was created.
    second = lead("Formed", "321.655", UTM_Source__c="linkedin", UTM_Medium__c="paid_social")
    ga4.add_session("321.655", t0 + timedelta(days=1), "newsletter", "email", "monthly-digest")
    formed = emu.convert_lead(second, at=t0 + timedelta(days=3))
    sync(loop)

    assert emu.record("Contact", contact)["Lead_Touch_Channel__c"] == "Paid Search"
    record = emu.record("Contact", formed)
    assert record["Lead_Touch_Channel__c"] == "Paid Social"
    assert record["Last_Touch_Channel__c"] == "Email"
    assert datetime.fromisoformat(record["First_Touch_Date__c"].replace("+0000", "+00:00")) == t0

    # W-shaped: first and lead-creation roles on the paid search visit, the opportunity's on email
    engine = make_engine(store_url)
    try:
        with Session(engine) as session:
            shares = dict(
                session.exec(
                    select(models.Touchpoint.channel, models.Credit.fraction)
                    .join(models.Credit, col(models.Credit.touchpoint_id) == models.Touchpoint.id)
                    .join(models.Deal, col(models.Deal.id) == models.Credit.deal_id)
                    .where(models.Deal.crm_id == deal, models.Credit.model == "w_shaped")
                ).all()
            )
    finally:
        engine.dispose()
    assert shares == pytest.approx({"Paid Search": 2 / 3, "Email": 1 / 3})


def test_an_ad_click_a_form_captured_is_one_touch_from_the_first_sync(salesforce: Loop) -> None:
    """A lead's form captured a paid search visit and its gclid; the lead was converted days
    later. The form touch happened when the lead was created, so the click of that day is the
    same touch (GA4's rule for clicks), from the first sync on: the next sync writes nothing."""
    loop, emu, ads = salesforce, salesforce.crm, salesforce.systems.emulators["google_ads"]
    t0 = NOW - timedelta(days=30)
    fields = {"FirstName": "Clicked", "LastName": "Lead", "Company": "Clicked Co",
              "Email": "clicked@example.com", "Status": "Open - Not Contacted",
              "GCLID__c": "Cj0KCQclicked0001", "UTM_Source__c": "google",
              "UTM_Medium__c": "cpc"}  # fmt: skip
    lead = str(emu.add_record("Lead", fields, t0))
    ads.add_click("Cj0KCQclicked0001", next(iter(ads.campaigns)), t0.date())
    contact = emu.convert_lead(lead, at=t0 + timedelta(days=3))
    sync(loop)
    record = emu.record("Contact", contact)
    assert float(record["Touch_Count__c"]) == 1
    assert record["First_Touch_Channel__c"] == "Paid Search"
    loop.crm.clear_log()
    sync(loop)
    assert contact not in loop.written_ids()


def test_a_source_file_is_the_truth_for_its_rows(
    hubspot: Loop, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    loop, probe = hubspot, hubspot.probe
    sync(loop)
    touches_file = loop.workdir / "offline_touchpoints.csv"
    spend_file = loop.workdir / "offline_spend.csv"
    rows = read_csv(touches_file)
    people = {probe.email(p).strip().lower(): (cid, p) for cid, p in probe.records().items()}
    once = [r for r in rows if sum(o["email"] == r["email"] for o in rows) == 1]
    assert len(once) >= 2, "the company needs two people with one offline row each"
    edited, removed = once[0], once[1]
    before = {e: people[e][1] for e in (edited["email"].lower(), removed["email"].lower())}

    # a correction (same person, same time, another channel) and a row taken out
    edited_row = dict(edited, channel="Partner Event")
    rows = [edited_row if r is edited else r for r in rows if r is not removed]
    write_csv(touches_file, rows)
    spend = read_csv(spend_file)
    spend[0]["cost"] = "20000.00"
    write_csv(spend_file, spend[:1])
    sync(loop)

    people = {probe.email(p).strip().lower(): p for p in probe.records().values()}
    after_edit, after_removal = people[edited["email"].lower()], people[removed["email"].lower()]
    old = before[edited["email"].lower()]
    assert after_edit[probe.touch_count] == old[probe.touch_count]  # replaced, not added
    assert "Partner Event" in after_edit[probe.path]
    assert (
        after_edit[probe.path].count(edited["channel"])
        == old[probe.path].count(edited["channel"]) - 1
    )
    was = before[removed["email"].lower()]
    assert int(after_removal[probe.touch_count]) == int(was[probe.touch_count]) - 1

    engine = make_engine(store_url)
    try:
        with Session(engine) as session:
            offline = session.exec(
                select(models.Touchpoint).where(models.Touchpoint.origin == "offline")
            ).all()
            ids = {t.id for t in session.exec(select(models.Touchpoint)).all()}
            credited = {c.touchpoint_id for c in session.exec(select(models.Credit)).all()}
            spend_rows = session.exec(
                select(models.Spend).where(models.Spend.origin == "offline")
            ).all()
    finally:
        engine.dispose()
    assert len(offline) == len(rows)  # the store holds the file's rows, no more
    assert credited <= ids  # no credit left on a touch that is gone
    assert [(s.campaign, s.cost) for s in spend_rows] == [(spend[0]["campaign"], 20_000.0)]
    campaigns = json.loads(report(loop, "--format", "json", "--by", "campaign"))["campaigns"]
    by_name = {c["campaign"]: c for c in campaigns}
    assert by_name[spend[0]["campaign"]]["spend"] == 20_000.0
    assert by_name.get(spend[1]["campaign"], {"spend": 0})["spend"] == 0

    # Removing a file, then the whole source, from the config keeps their rows, and says so.
    def drop_spend_file(config: dict[str, Any]) -> None:
        offline = next(s for s in config["sources"] if s["name"] == "offline")
        del offline["settings"]["spend_file"]

    edit_yaml(loop.systems.config_path, drop_spend_file)
    sync(loop)
    assert count(store_url, models.Spend, "offline") == 1
    edit_yaml(
        loop.systems.config_path,
        lambda c: c.update(sources=[s for s in c["sources"] if s["name"] != "offline"]),
    )
    with caplog.at_level(logging.WARNING, logger="connector.run.extract"):
        sync(loop)
    assert "no longer in the config" in caplog.text
    people = {probe.email(p).strip().lower(): p for p in probe.records().values()}
    assert "Partner Event" in people[edited["email"].lower()][probe.path]
    assert count(store_url, models.Touchpoint, "offline") == len(rows)
    assert count(store_url, models.Spend, "offline") == 1


def count(store_url: str, model: type[Any], origin: str) -> int:
    engine = make_engine(store_url)
    try:
        with Session(engine) as session:
            return len(session.exec(select(model).where(model.origin == origin)).all())
    finally:
        engine.dispose()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_person_who_leaves_a_journey_has_closedloops_fields_cleared(
    loop: Loop, store_url: str
) -> None:
    probe, ga4 = loop.probe, loop.ga4
    person = probe.add_person("leaving@example.com", NOW - timedelta(days=40), "999.111")
    ga4.add_session("999.111", NOW - timedelta(days=41), "google", "organic", "(organic)")
    ga4.add_session("999.111", NOW - timedelta(days=39), "newsletter", "email", "monthly-digest")
    sync(loop)
    first, last = probe.first, probe.last
    written = probe.records()[person]
    assert (written[first], written[last], float(written[probe.touch_count])) == (
        "Organic Search", "Email", 2,
    )  # fmt: skip

    probe.edit(person, **{first: "Trade show"})  # a rep's value in a fill_if_empty field
    probe.clear_client_id(person)  # the person loses the identity their journey came from
    run = sync(loop)

    now = probe.records()[person]
    assert now[first] == "Trade show"  # fill_if_empty: a person's value stays
    cleared = [f for f in probe.fields if f != first and not empty(written.get(f))]
    assert cleared and all(empty(now[f]) for f in cleared), {f: now[f] for f in cleared}
    engine = make_engine(store_url)
    try:
        with Session(engine) as session:
            audit = session.exec(
                select(models.FieldWrite).where(
                    models.FieldWrite.run_id == run.id, models.FieldWrite.record_id == person
                )
            ).all()
    finally:
        engine.dispose()
    assert {a.field for a in audit} == set(cleared)
    assert all(a.new_value is None and a.status == "ok" and a.old_value for a in audit)

    loop.crm.clear_log()
    sync(loop)
    assert person not in loop.written_ids()  # cleared once, then left alone


def test_channel_path_lists_every_touch_or_collapses_repeats(hubspot: Loop) -> None:
    mapping = hubspot.workdir / "mappings" / "hubspot.yaml"

    def collapse(on: bool) -> None:
        def change(doc: dict[str, Any]) -> None:
            path = next(f for f in doc["fields"] if f["field"] == "cl_channel_path")
            path["collapse_repeats"] = on
            path["max_length"] = 65_000

        edit_yaml(mapping, change)

    collapse(False)
    sync(hubspot)
    every = {cid: p for cid, p in hubspot.probe.records().items() if p.get("cl_channel_path")}
    for props in every.values():
        assert len(props["cl_channel_path"].split(" > ")) == int(props["cl_touch_count"])
    repeated = [p for p in every.values() if has_repeats(p["cl_channel_path"])]
    assert repeated

    collapse(True)
    sync(hubspot)
    after = hubspot.probe.records()
    for cid, props in every.items():
        runs = [name for name, _ in groupby(props["cl_channel_path"].split(" > "))]
        assert after[cid]["cl_channel_path"] == " > ".join(runs)
        assert after[cid]["cl_touch_count"] == props["cl_touch_count"]  # still every touch


def has_repeats(path: str) -> bool:
    names = path.split(" > ")
    return any(a == b for a, b in zip(names, names[1:], strict=False))
