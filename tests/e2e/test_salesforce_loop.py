"""What only Salesforce has: the Bulk API 2.0 path and the daily API budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connector.demo.synthetic import Company, generate
from tests.e2e.crm_loop import Loop, start_loop


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=5, contacts=120, visits=1200, deals=30)


def set_crm_setting(loop: Loop, **values: object) -> None:
    path = loop.systems.config_path
    config = yaml.safe_load(path.read_text())
    config["crm"]["settings"].update(values)
    path.write_text(yaml.safe_dump(config))


def clean_state(tmp_path: Path, company: Company) -> dict[str, dict[str, object]]:
    clean = start_loop(tmp_path / "clean", "salesforce", company)
    try:
        clean.sync()
        return clean.crm_state()
    finally:
        clean.systems.stop()


def test_bulk_api_above_threshold_reaches_the_same_state(tmp_path: Path, company: Company) -> None:
    expected = clean_state(tmp_path, company)
    bulk = start_loop(tmp_path / "bulk", "salesforce", company)
    try:
        set_crm_setting(bulk, bulk_threshold=20, bulk_poll_interval=0.01)
        _, run = bulk.sync()
        assert run.status == "succeeded", run.error
        assert bulk.crm.requests("PATCH", "/composite/sobjects") == []
        jobs = bulk.crm.requests("POST", "/jobs/ingest")
        assert jobs and all(r.json()["operation"] == "update" for r in jobs)
        assert bulk.crm_state() == expected
    finally:
        bulk.systems.stop()


def test_budget_stop_is_incomplete_then_resumes(tmp_path: Path, company: Company) -> None:
    expected = clean_state(tmp_path, company)
    loop = start_loop(tmp_path / "budget", "salesforce", company)
    try:
        loop.crm.daily_limit = 32  # 25% share: 8 calls for closedloop, fewer than a run needs
        _, run = loop.sync()
        assert run.status == "incomplete"
        assert "budget" in run.error.lower() or "limit" in run.error.lower()
        assert loop.crm.api_used <= 8
        assert loop.crm_state() != expected

        loop.crm.daily_limit = 15000  # next day: the org's counter has room again
        _, resumed = loop.sync()
        assert resumed.status == "succeeded", resumed.error
        assert loop.crm_state() == expected
    finally:
        loop.systems.stop()


def credited(loop: Loop) -> list[tuple[str | None, str | None]]:
    """(deal account, account of the credited touch's contact) for every linear credit."""
    from sqlmodel import Session, select

    from connector.store import models
    from connector.store.database import make_engine

    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        rows = session.exec(
            select(models.Deal.account_id, models.Contact.account_id)
            .join(models.Credit, models.Credit.deal_id == models.Deal.id)
            .join(models.Touchpoint, models.Touchpoint.id == models.Credit.touchpoint_id)
            .join(models.Contact, models.Contact.id == models.Touchpoint.contact_id)
            .where(models.Credit.model == "linear")
        ).all()
    engine.dispose()
    return list(rows)


def test_account_based_journeys_take_every_contact_of_the_account(
    tmp_path: Path, company: Company
) -> None:
    person = start_loop(tmp_path / "person", "salesforce", company)
    account = start_loop(tmp_path / "account", "salesforce", company)
    try:
        person.sync()
        path = account.systems.config_path
        config = yaml.safe_load(path.read_text())
        config["sync"]["attribution"] = {"account_based": True, "half_life_days": 3}
        path.write_text(yaml.safe_dump(config))
        _, run = account.sync()
        assert run.status == "succeeded", run.error
        by_person, by_account = credited(person), credited(account)
        assert len(by_account) > len(by_person)
        # a touch from outside the deal's account can only come from a contact role
        outside = {pair for pair in by_account if pair[0] != pair[1]}
        assert outside <= set(by_person)
    finally:
        person.systems.stop()
        account.systems.stop()


def test_dated_conversion_rates_of_the_org_convert_each_deal_at_its_date(
    tmp_path: Path, company: Company
) -> None:
    from sqlmodel import Session, select

    from connector.store import models
    from connector.store.database import make_engine

    loop = start_loop(tmp_path / "rates", "salesforce", company)
    try:
        rates = loop.crm.records["DatedConversionRate"]
        eur = next(r for r in rates.values() if r["IsoCode"] == "EUR")
        eur_days = sorted((d.closed_at or d.created_at).date() for d in company.deals
                          if d.currency == "EUR")  # fmt: skip
        cutoff = eur_days[len(eur_days) // 2]  # deals on both sides of the rate change
        eur["NextStartDate"] = cutoff.isoformat()
        eur["ConversionRate"] = 0.90
        loop.crm.add_record("DatedConversionRate", {
            "IsoCode": "EUR", "ConversionRate": 0.95, "StartDate": cutoff.isoformat(),
            "NextStartDate": "9999-12-31"})  # fmt: skip
        ctx, run = loop.sync()
        assert run.status == "succeeded"
        assert "deals_unknown_currency" not in ctx.counts  # CHF has an org rate, unlike config
        engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
        with Session(engine) as session:
            deals = session.exec(select(models.Deal).where(models.Deal.currency == "EUR")).all()
        engine.dispose()
        assert deals
        for d in deals:
            on = (d.closed_at or d.created_at).date()
            rate = 0.90 if on < cutoff else 0.95
            assert d.amount_base is not None and d.amount is not None
            assert abs(d.amount_base - d.amount / rate) < 1e-6, (d.crm_id, on)
    finally:
        loop.systems.stop()
