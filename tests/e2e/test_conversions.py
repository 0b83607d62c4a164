"""CRM outcomes back to the ad platforms, end to end: the demo's loop with conversions.yaml, the
real clients and the three ad platform emulators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from connector.cli import app
from connector.demo.emulators import demo_consent
from connector.demo.synthetic import Company, generate
from connector.kernel.identity import email_hash
from connector.store import models
from connector.store.database import make_engine
from tests.e2e.crm_loop import Loop, start_loop

runner = CliRunner()
PLATFORMS = ("google_ads", "meta_ads", "linkedin_ads")


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=5, contacts=150, visits=1500, deals=40)


@pytest.fixture
def loop(tmp_path: Path, company: Company) -> Iterator[Loop]:
    running = start_loop(tmp_path / "demo", "hubspot", company)
    yield running
    running.systems.stop()


def emulator(loop: Loop, platform: str) -> Any:
    return loop.systems.emulators[platform]


def uploads(loop: Loop) -> list[Any]:
    """Every request that sent conversions or adjustments to an ad platform."""
    return (
        emulator(loop, "google_ads").requests("POST", ":upload")
        + emulator(loop, "meta_ads").requests("POST", "/events")
        + emulator(loop, "linkedin_ads").requests("POST", "/rest/conversionEvents")
    )


def accepted(loop: Loop) -> dict[str, list[str]]:
    """The dedup ids each platform holds, as many times as it counts them."""
    return {
        "google_ads": sorted(c.order_id for c in emulator(loop, "google_ads").conversions),
        "meta_ads": sorted(e.event_id for e in emulator(loop, "meta_ads").server_events),
        "linkedin_ads": sorted(
            e.event_id for e in emulator(loop, "linkedin_ads").conversion_events
        ),
    }


def ledger(loop: Loop) -> list[models.Conversion]:
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        rows = list(session.exec(select(models.Conversion).order_by(models.Conversion.id)).all())
    engine.dispose()
    return rows


def edit_conversions(loop: Loop, **changes: Any) -> Path:
    path = loop.workdir / "mappings" / "conversions.yaml"
    mapping = yaml.safe_load(path.read_text())
    mapping.update(changes)
    path.write_text(yaml.safe_dump(mapping))
    return path


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_won_deals_reach_each_platform_once_and_a_rerun_sends_nothing(
    tmp_path: Path, company: Company, crm: str
) -> None:
    loop = start_loop(tmp_path / crm, crm, company)
    try:
        ctx, run = loop.sync()
        assert run.status == "succeeded", run.error
        held = accepted(loop)
        assert all(held[p] for p in PLATFORMS), held
        for platform, ids in held.items():
            assert len(ids) == len(set(ids)), platform  # each conversion counted once
            assert all(i.startswith("cl-won-") for i in ids)
        rows = ledger(loop)
        assert {r.status for r in rows} <= {"accepted", "rejected"}
        assert {
            p: sorted(r.dedup_id for r in rows if r.platform == p and r.status == "accepted")
            for p in PLATFORMS
        } == held
        won = {r.subject_id for r in rows}
        engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
        with Session(engine) as session:
            won_deals = set(session.exec(select(models.Deal.crm_id).where(models.Deal.is_won)))
        engine.dispose()
        assert won <= won_deals
        sent = len(uploads(loop))

        _, rerun = loop.sync()
        assert rerun.status == "succeeded", rerun.error
        assert len(uploads(loop)) == sent  # nothing new: no upload request at all
        assert accepted(loop) == held
        assert json.loads(rerun.counts)["conversions_to_send"] == 0
    finally:
        loop.systems.stop()


def test_nothing_about_a_person_without_consent_is_sent(loop: Loop, company: Company) -> None:
    loop.sync()
    refused = [p for p in company.people if demo_consent(p.key) != "granted"]
    assert refused
    bodies = b"\n".join(r.body for r in uploads(loop))
    assert bodies
    for person in refused:
        for value in (email_hash(person.email), person.gclid, person.fbclid):
            assert not value or value.encode() not in bodies, person.key
    consented = [p for p in company.people if demo_consent(p.key) == "granted"]
    assert any(email_hash(p.email).encode() in bodies for p in consented)


def test_report_and_runs_show_the_conversions(loop: Loop) -> None:
    _, run = loop.sync()
    config = str(loop.systems.config_path)
    report = runner.invoke(app, ["report", "-c", config, "--format", "json"])
    assert report.exit_code == 0, report.output
    rows = json.loads(report.output)["conversions"]
    ledger_rows = ledger(loop)
    assert {r["platform"] for r in rows} == set(PLATFORMS)
    assert sum(r["accepted"] for r in rows) == sum(c.status == "accepted" for c in ledger_rows)
    value = sum(c.value_base or 0 for c in ledger_rows if c.status == "accepted")
    assert sum(r["value_sent"] for r in rows) == pytest.approx(value, abs=0.05)
    rejected = [c for c in ledger_rows if c.status == "rejected"]
    assert rejected, "the demo company has clicks older than Google's window"
    reasons = sum((r["rejected_reasons"].get("EXPIRED_EVENT", 0) for r in rows), 0)
    assert reasons == len(rejected)
    table = runner.invoke(app, ["report", "-c", config])
    assert "Conversions sent to the ad platforms" in table.output
    csv_out = runner.invoke(app, ["report", "-c", config, "--format", "csv"]).output
    assert "platform,campaign" not in csv_out  # a CSV is one table: the view's rows
    html = runner.invoke(app, ["report", "-c", config, "--format", "html"]).output
    assert 'data-table="conversions"' in html

    shown = runner.invoke(app, ["runs", "-c", config, "show", str(run.id)])
    assert shown.exit_code == 0, shown.output
    assert "Rejected conversions" in shown.output
    for row in rejected:
        assert row.dedup_id in shown.output
    assert "EXPIRED_EVENT" in shown.output


def test_dry_run_lists_what_would_be_sent_and_sends_and_records_nothing(loop: Loop) -> None:
    config = str(loop.systems.config_path)
    result = runner.invoke(app, ["sync", "-c", config, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "conversions would be sent" in result.output
    assert "google-won" in result.output and "meta-won" in result.output
    assert uploads(loop) == []
    assert ledger(loop) == []


def test_only_conversions_runs_the_step_alone(loop: Loop) -> None:
    ctx = loop.context()
    from connector.run.sync import run_sync

    try:
        run_sync(ctx, steps=("extract", "match", "revenue"))
    finally:
        ctx.close()
    crm_writes = len(loop.writes())
    result = runner.invoke(app, ["sync", "-c", str(loop.systems.config_path), "--only",
                                 "conversions"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert all(accepted(loop).values())
    assert len(loop.writes()) == crm_writes  # the write-back did not run


def test_a_won_deal_changed_later_is_restated_or_retracted_on_google(loop: Loop) -> None:
    loop.sync()
    from connector.kernel.timeutil import utcnow

    old_enough = [
        r for r in ledger(loop)
        if r.platform == "google_ads" and r.status == "accepted"
        and 2 <= (utcnow() - r.occurred_at).days <= 50  # Google adjusts from 1 to 54 days
    ]  # fmt: skip
    assert len(old_enough) >= 2
    restated, lost = old_enough[0], old_enough[1]
    loop.crm.edit("deals", restated.subject_id, amount="123456.00")
    loop.crm.edit("deals", lost.subject_id, dealstage="closedlost")

    ctx, run = loop.sync()
    assert run.status == "succeeded", run.error
    google = {c.order_id: c for c in emulator(loop, "google_ads").conversions}
    assert google[restated.dedup_id].value == 123456.0
    assert google[lost.dedup_id].retracted
    adjustments = emulator(loop, "google_ads").adjustments
    assert sorted(a.adjustment_type for a in adjustments) == ["RESTATEMENT", "RETRACTION"]
    rows = {r.id: r for r in ledger(loop)}
    assert rows[restated.id].value == 123456.0 and rows[lost.id].status == "retracted"
    assert json.loads(run.counts)["conversions_not_adjustable"] >= 1  # on LinkedIn

    loop.sync()
    assert len(emulator(loop, "google_ads").adjustments) == 2  # adjusted once


def test_a_forgotten_person_is_never_sent_again(loop: Loop, company: Company) -> None:
    loop.sync()
    row = next(r for r in ledger(loop) if r.platform == "linkedin_ads" and r.status == "accepted")
    email = emulator(loop, "hubspot").contact(row.contact_crm_id)["email"]
    person_rows = [r for r in ledger(loop) if r.contact_crm_id == row.contact_crm_id]
    config = str(loop.systems.config_path)
    result = runner.invoke(app, ["forget", "--email", email, "-c", config])
    assert result.exit_code == 0, result.output
    assert f"{len(person_rows)} ad platform conversions" in result.output
    assert [r for r in ledger(loop) if r.contact_crm_id == row.contact_crm_id] == []
    before = {id(r) for r in uploads(loop)}

    loop.sync()  # the CRM still holds the person: they are read again, but never sent
    assert [r for r in ledger(loop) if r.contact_crm_id == row.contact_crm_id] == []
    later = [r.body for r in uploads(loop) if id(r) not in before]
    assert later  # the person's deal went again, with a colleague's identifiers
    assert email_hash(email).encode() not in b"\n".join(later)
    held = accepted(loop)
    assert all(len(ids) == len(set(ids)) for ids in held.values())  # and counted once


def test_an_unknown_destination_stops_before_anything_is_sent(loop: Loop) -> None:
    path = loop.workdir / "mappings" / "conversions.yaml"
    mapping = yaml.safe_load(path.read_text())
    mapping["conversions"][2]["conversion_rule"] = "999"  # linkedin-won, checked last
    path.write_text(yaml.safe_dump(mapping))
    result = runner.invoke(app, ["sync", "-c", str(loop.systems.config_path)])
    assert result.exit_code == 2, result.output  # a configuration error
    text = result.output
    assert "conversions.yaml:" in text and "conversion rule 999 does not exist" in text
    assert uploads(loop) == []  # nothing half-sent: not even to Google and Meta
    assert ledger(loop) == []


def test_a_missing_consent_field_stops_before_anything_is_sent(loop: Loop) -> None:
    path = edit_conversions(loop, consent={"field": "gdpr_ads_ok", "values": ["yes"]})
    result = runner.invoke(app, ["sync", "-c", str(loop.systems.config_path)])
    assert result.exit_code == 2
    assert f"{path}:" in result.output
    assert "the consent field 'gdpr_ads_ok' does not exist on hubspot contacts" in result.output
    assert uploads(loop) == [] and ledger(loop) == []


def test_a_currency_without_a_rate_is_named(loop: Loop) -> None:
    path = edit_conversions(loop, currency="JPY")
    result = runner.invoke(app, ["sync", "-c", str(loop.systems.config_path)])
    assert result.exit_code == 2
    assert f"{path}:" in result.output and "currency JPY has no rate" in result.output
    assert uploads(loop) == []


def test_a_click_older_than_the_action_window_is_recorded_not_sent(
    loop: Loop, company: Company
) -> None:
    from connector.kernel.timeutil import utcnow

    google = emulator(loop, "google_ads")
    people = {p.key: p for p in company.people if p.gclid and demo_consent(p.key) == "granted"}
    moved = 0
    for deal in company.deals:  # recent wins whose buyer came from an ad clicked 30 days before
        buyer = people.get(deal.people[0])
        if deal.stage != "closedwon" or buyer is None or not deal.closed_at:
            continue
        if (utcnow() - deal.closed_at).days < 50:
            for click in google.clicks:
                if click.gclid == buyer.gclid:  # in click_view's 90 days: its time is known
                    click.day = (deal.closed_at - timedelta(days=30)).date()
                    moved += 1
    assert moved
    google.conversion_actions["7003"].click_through_lookback_window_days = 20
    _, run = loop.sync()
    rows = [r for r in ledger(loop) if r.platform == "google_ads" and r.status == "rejected"]
    local = [r for r in rows if r.sent_at is None]
    assert local
    for row in local:
        assert row.reason.startswith("EXPIRED_EVENT: the click of ")
        assert "20-day click-through window; not sent" in row.reason
    bodies = b"\n".join(r.body for r in google.requests("POST", ":upload"))
    assert all(f'"{row.dedup_id}"'.encode() not in bodies for row in local)
    assert json.loads(run.counts)["conversions_rejected"] >= len(local)


def test_a_deal_in_a_currency_without_a_rate_is_held_back_and_named(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.sync()
    deal = next(r for r in ledger(loop) if r.platform == "linkedin_ads").subject_id
    loop.crm.edit("deals", deal, deal_currency_code="CHF")  # the demo config has no CHF rate
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:  # as if never sent: the deal is new to the platforms
        for row in session.exec(select(models.Conversion).where(
                models.Conversion.subject_id == deal)):  # fmt: skip
            session.delete(row)
        session.commit()
    engine.dispose()
    _, run = loop.sync()
    assert json.loads(run.counts)["conversions_skipped_no_rate"] == 3  # one per platform
    assert "the amount's currency has no rate in currency.rates" in caplog.text
    assert f"google-won: deal {deal}" in caplog.text
    assert [r for r in ledger(loop) if r.subject_id == deal] == []


def test_doctor_checks_the_conversion_destinations(loop: Loop) -> None:
    result = runner.invoke(app, ["doctor", "-c", str(loop.systems.config_path)])
    assert result.exit_code == 0, result.output
    assert "conversions: destinations exist and take uploads" in result.output
    assert "google-won → CRM closed won" in result.output
    emulator(loop, "meta_ads").pixels.clear()
    broken = runner.invoke(app, ["doctor", "-c", str(loop.systems.config_path)])
    assert broken.exit_code == 2  # the mapping names a pixel that is not there: a config fix
    assert "pixel 1234567890123456 cannot be used" in " ".join(broken.output.split())


def test_meta_test_events_go_live_once_the_test_code_is_removed(loop: Loop) -> None:
    path = loop.systems.config_path
    config = yaml.safe_load(path.read_text())
    meta = next(s for s in config["sources"] if s["kind"] == "meta_ads")
    meta["settings"]["test_event_code"] = "TEST4242"
    path.write_text(yaml.safe_dump(config))
    loop.sync()
    pixel = emulator(loop, "meta_ads")
    tested = sorted(e.event_id for e in pixel.test_events)
    assert tested and pixel.server_events == []  # nothing counted live
    assert sorted(r.dedup_id for r in ledger(loop) if r.status == "test") == tested
    loop.sync()
    assert len(pixel.test_events) == len(tested)  # test events are not repeated every run

    del meta["settings"]["test_event_code"]
    path.write_text(yaml.safe_dump(config))
    loop.sync()
    assert sorted(e.event_id for e in pixel.server_events) == tested
    assert {r.status for r in ledger(loop) if r.platform == "meta_ads"} == {"accepted"}


def test_the_step_on_each_store_backend(loop: Loop, store_url: str) -> None:
    path = loop.systems.config_path
    config = yaml.safe_load(path.read_text())
    config["store"]["url"] = store_url
    path.write_text(yaml.safe_dump(config))
    _, run = loop.sync()
    assert run.status == "succeeded", run.error
    held = accepted(loop)
    assert all(held.values()) and all(len(v) == len(set(v)) for v in held.values())
    _, rerun = loop.sync()
    assert json.loads(rerun.counts)["conversions_to_send"] == 0 and accepted(loop) == held
    report = runner.invoke(app, ["report", "-c", str(path), "--format", "json"])
    rows = json.loads(report.output)["conversions"]
    assert sum(r["accepted"] for r in rows) == sum(map(len, held.values()))
    result = runner.invoke(app, ["forget", "--email", "nobody@example.com", "-c", str(path)])
    assert result.exit_code == 0, result.output


def test_an_unconfirmed_conversion_is_not_resent_once_consent_is_withdrawn(loop: Loop) -> None:
    loop.sync()
    row = next(r for r in ledger(loop) if r.platform == "linkedin_ads" and r.status == "accepted")
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:  # as a run killed after recording, before the answer
        stored = session.get(models.Conversion, row.id)
        assert stored is not None
        stored.status = "pending"
        session.add(stored)
        session.commit()
    engine.dispose()
    loop.crm.edit("contacts", row.contact_crm_id, ads_consent="denied")
    before = {id(r) for r in uploads(loop)}

    _, run = loop.sync()
    later = b"\n".join(r.body for r in uploads(loop) if id(r) not in before)
    assert f'"{row.dedup_id}"'.encode() not in later
    (settled,) = [r for r in ledger(loop) if r.id == row.id]
    assert settled.status == "unconfirmed"
    assert "no longer eligible" in settled.reason
    assert json.loads(run.counts)["conversions_unconfirmed"] == 1
