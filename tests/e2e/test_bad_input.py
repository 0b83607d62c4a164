"""Bad input: a clear message naming what and where, and nothing written to the CRM."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from connector.cli import app
from connector.config.loader import load_config
from connector.demo.synthetic import Company, generate
from connector.kernel.errors import ConfigError
from connector.kernel.identity import email_hash, normalise_email
from connector.store import models
from tests.e2e.crm_loop import Loop, start_loop

runner = CliRunner()


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=13, contacts=40, visits=400, deals=10)


@pytest.fixture(params=["hubspot", "salesforce"])
def loop(request: pytest.FixtureRequest, tmp_path: Path, company: Company) -> Iterator[Loop]:
    running = start_loop(tmp_path / "demo", request.param, company)
    yield running
    running.systems.stop()


def edit(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def sync(loop: Loop) -> Any:
    return runner.invoke(app, ["sync", "-c", str(loop.systems.config_path)])


def mapping_path(loop: Loop) -> Path:
    return loop.workdir / "mappings" / f"{loop.probe.crm}.yaml"


def test_mapping_to_a_missing_field_is_caught_before_any_write(loop: Loop) -> None:
    def add_missing(m: dict[str, Any]) -> None:
        m["create_missing_fields"] = False
        m["fields"].append({"field": "No_Such_Field__c", "value": "touch_count"})

    edit(mapping_path(loop), add_missing)
    result = sync(loop)
    assert result.exit_code == 2, result.output
    assert "No_Such_Field__c" in result.output and f"{loop.probe.crm}.yaml:" in result.output
    assert loop.writes() == []


def test_read_only_field_is_caught_before_any_write(loop: Loop) -> None:
    read_only = "hs_analytics_source" if loop.probe.crm == "hubspot" else "IsConverted"
    edit(
        mapping_path(loop),
        lambda m: m["fields"].append({"field": read_only, "value": "touch_count"}),
    )
    if loop.probe.crm == "salesforce":
        loop.crm.add_field("Contact", "IsConverted", "boolean", updateable=False)
    result = sync(loop)
    assert result.exit_code == 2, result.output
    assert "read-only" in result.output and read_only in result.output
    assert loop.writes() == []


@pytest.mark.parametrize("loop", ["salesforce"], indirect=True)  # restricted picklists
def test_picklist_value_outside_the_list_is_caught(loop: Loop) -> None:
    def bad_map(m: dict[str, Any]) -> None:
        m["fields"][0]["value_map"]["Organic Search"] = "Carrier Pigeon"

    edit(mapping_path(loop), bad_map)
    result = sync(loop)
    assert result.exit_code == 2
    assert "Carrier Pigeon" in result.output and "LeadSource" in result.output
    assert loop.writes() == []


def test_expired_token_is_a_configuration_error_without_the_token(loop: Loop) -> None:
    if loop.probe.crm == "hubspot":
        loop.crm.access_token = "rotated"
    else:
        loop.crm.expire_session(keep_expiring=True)
    result = sync(loop)
    assert result.exit_code == 2, result.output
    assert "pat-na1-demo" not in result.output and "00Ddemo!" not in result.output
    assert loop.writes() == []


def test_unreachable_api_fails_clearly(loop: Loop) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    key = "host" if loop.probe.crm == "hubspot" else "instance_url"
    url = f"http://127.0.0.1:{closed_port}"
    edit(loop.systems.config_path, lambda c: c["crm"]["settings"].update({key: url}))
    result = sync(loop)
    assert result.exit_code != 0
    assert "connect" in result.output.lower()
    assert loop.writes() == []


def test_invalid_cron_names_file_and_line(tmp_path: Path, loop: Loop) -> None:
    edit(loop.systems.config_path, lambda c: c.update(
        service={"jobs": [{"name": "nightly", "cron": "61 25 * * *"}]}))  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"closedloop.yaml:\d+: service.jobs.0.cron.*invalid cron"
    ):
        load_config(loop.systems.config_path)
    result = runner.invoke(app, ["serve", "-c", str(loop.systems.config_path)])
    assert result.exit_code == 2 and "invalid cron" in result.output


def test_world_readable_secrets_file_warns(loop: Loop, caplog: pytest.LogCaptureFixture) -> None:
    (loop.workdir / "secrets.yaml").chmod(0o644)
    with caplog.at_level("WARNING"):
        load_config(loop.systems.config_path)
    assert "readable by other users" in caplog.text and "chmod 600" in caplog.text


def test_email_spellings_normalise_alike() -> None:
    spellings = [" Chloé.Dubois@Example.COM ", "chloé.dubois@example.com",
                 "chloe\u0301.dubois@example.com", "ＣＨＬＯÉ.dubois@example.com"]  # fmt: skip
    assert {normalise_email(s) for s in spellings} == {"chloé.dubois@example.com"}
    assert len({email_hash(s) for s in spellings}) == 1


def test_odd_records_are_counted_not_miscounted(tmp_path: Path, company: Company) -> None:
    """Shared emails, deals without contacts, zero/negative/missing amounts, unknown currency."""
    loop = start_loop(tmp_path / "odd", "hubspot", company)
    try:
        emu, now = loop.crm, datetime.now(UTC)
        first = emu.add_contact(
            {"email": "shared@example.com"}, created_at=now - timedelta(days=20)
        )
        emu.add_contact({"email": " Shared@Example.com"}, created_at=now - timedelta(days=10))
        with (loop.workdir / "offline_touchpoints.csv").open("a") as out:
            out.write(
                f"shared@example.com,{(now - timedelta(days=30)).date()},Events,Expo,expo,offline\n"
            )
        won = {"dealstage": "closedwon", "closedate": (now - timedelta(days=1)).isoformat()}
        odd = {
            "no contacts": ({**won, "amount": "1000"}, []),
            "zero": ({**won, "amount": "0"}, [first]),
            "negative": ({**won, "amount": "-500"}, [first]),
            "missing": ({**won, "amount": None}, [first]),
            "yen": ({**won, "amount": "90000", "deal_currency_code": "JPY"}, [first]),
        }
        ids = {name: emu.add_deal({"dealname": name, **props}, now - timedelta(days=5), contacts)
               for name, (props, contacts) in odd.items()}  # fmt: skip
        ctx, run = loop.sync()
        assert run.status == "succeeded"
        counts = ctx.counts
        assert counts["deals_unknown_currency"] >= 1
        with Session(ctx.engine) as session:
            deals = {d.crm_id: d for d in session.exec(select(models.Deal))}
            credits = session.exec(select(models.Credit)).all()
            shared = session.exec(
                select(models.Touchpoint).where(models.Touchpoint.utm_campaign == "Expo")
            ).one()
            contact = session.exec(
                select(models.Contact).where(models.Contact.crm_id == first)
            ).one()
        by_deal: dict[int, list[models.Credit]] = {}
        for c in credits:
            by_deal.setdefault(c.deal_id, []).append(c)
        assert shared.contact_id == contact.id  # the earlier of two records sharing the email
        zero = by_deal[deals[ids["zero"]].id or 0]
        assert zero and all(c.amount == 0 for c in zero)
        for name in ("no contacts", "negative", "missing", "yen"):
            assert deals[ids[name]].id not in by_deal, name
        assert deals[ids["yen"]].amount_base is None
    finally:
        loop.systems.stop()
