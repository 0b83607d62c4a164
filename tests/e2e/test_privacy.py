"""Secrets never leave the process; a person can be forgotten."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from connector.cli import app
from connector.demo.emulators import AD_PLATFORMS, TOKENS, demo_phone
from connector.demo.synthetic import generate
from connector.kernel.identity import email_hash, normalise_phone, sha256_hex
from connector.run.sync import run_job
from connector.store import models
from connector.store.database import make_engine
from tests.e2e.crm_loop import start_loop

runner = CliRunner()


def spellings(secret: str) -> set[str]:
    """A secret as it may leak: itself, URL-encoded (a query string), escaped in a repr."""
    return {secret, quote(secret, safe=""), quote_plus(secret), repr(secret)[1:-1]}


def test_no_output_of_a_full_run_contains_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = start_loop(
        tmp_path / "demo", "hubspot", generate(seed=21, contacts=60, visits=600, deals=15)
    )
    # secrets as admins hand them over: `echo TOKEN > file` leaves a newline, a paste leaves
    # spaces; Meta's token, sent in the query string, has characters URL encoding changes
    meta_token = "EAAB/demo+token=="
    loop.systems.emulators["meta_ads"].access_token = meta_token
    handed = {
        "CLOSEDLOOP_DEMO_HUBSPOT_TOKEN": TOKENS["CLOSEDLOOP_DEMO_HUBSPOT_TOKEN"] + "\n",
        "CLOSEDLOOP_DEMO_GA4_TOKEN": f"  {TOKENS['CLOSEDLOOP_DEMO_GA4_TOKEN']} ",
        "CLOSEDLOOP_DEMO_META_TOKEN": f"{meta_token}\n",
    }
    for name, value in handed.items():
        monkeypatch.setenv(name, value)
    secrets = {*TOKENS.values(), meta_token, *handed.values()}
    try:
        # faults make every adapter log retries with the errors it met (Meta puts the token in
        # its query string, so its errors are the likeliest to leak it)
        for name in ("hubspot", "ga4", "google_ads", "meta_ads", "linkedin_ads"):
            loop.systems.emulators[name].inject("429", count=1)
            loop.systems.emulators[name].inject("503", count=1)
        config = str(loop.systems.config_path)
        outputs = [runner.invoke(app, ["sync", "-c", config, "--verbose", "--log-format", "json"])]
        assert outputs[0].exit_code == 0, outputs[0].output
        assert "retrying" in outputs[0].output  # the logs did talk about the failures
        for args in (["report", "-c", config, "--format", "json"],
                     ["report", "-c", config, "--format", "csv"],
                     ["report", "-c", config, "--format", "html"],
                     ["report", "-c", config, "--by", "campaign"],
                     ["runs", "-c", config], ["runs", "-c", config, "show", "1"],
                     ["doctor", "-c", config]):  # fmt: skip
            outputs.append(runner.invoke(app, args))
        # a line break inside a token: refused before any request, the value not shown
        monkeypatch.setenv("CLOSEDLOOP_DEMO_LINKEDIN_TOKEN", "AQV-demo\ntoken")
        broken = runner.invoke(app, ["sync", "-c", config])
        assert broken.exit_code == 2, broken.output
        assert "CLOSEDLOOP_DEMO_LINKEDIN_TOKEN" in broken.output
        assert "line break" in broken.output
        outputs.append(broken)
        secrets.add("AQV-demo\ntoken")
        text = "\n".join(r.output for r in outputs)
        stored = b"".join(p.read_bytes() for p in loop.workdir.glob("closedloop.db*"))
        for secret in secrets:
            for spelling in spellings(secret.strip()) | spellings(secret):
                assert spelling not in text, spelling
                assert spelling.encode() not in stored, spelling
    finally:
        loop.systems.stop()


def test_an_error_quoting_a_secret_is_redacted_when_printed_stored_and_shown(
    tmp_path: Path,
) -> None:
    """The same error text everywhere: the CLI's message, the run's stored error, `runs`."""
    company = generate(seed=23, contacts=20, visits=100, deals=4)
    loop = start_loop(tmp_path / "demo", "hubspot", company)
    token = TOKENS["CLOSEDLOOP_DEMO_HUBSPOT_TOKEN"]
    try:
        config = str(loop.systems.config_path)

        def fail_quoting_the_token(ctx: Any) -> None:  # as an HTTP client's error may
            raise RuntimeError(f"Authorization: Bearer {token}\n?token={quote_plus(token)}")

        ctx = loop.context()
        try:
            with pytest.raises(RuntimeError):
                run_job(ctx, "sync", fail_quoting_the_token)
        finally:
            ctx.close()
        outputs = [runner.invoke(app, ["runs", "-c", config]),
                   runner.invoke(app, ["runs", "-c", config, "show", "1"])]  # fmt: skip
        assert "RuntimeError: Authorization: Bearer ***" in outputs[1].output
        engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
        with Session(engine) as session:
            run = session.get(models.SyncRun, 1)
            assert run is not None and run.status == "failed"
            assert run.error == "RuntimeError: Authorization: Bearer ***\n?token=***"
        engine.dispose()
        text = "\n".join(r.output for r in outputs)
        for spelling in spellings(token):
            assert spelling not in text
    finally:
        loop.systems.stop()


def test_forget_removes_a_person_from_the_store(tmp_path: Path) -> None:
    company = generate(seed=22, contacts=60, visits=600, deals=15)
    loop = start_loop(tmp_path / "demo", "hubspot", company)
    try:
        loop.sync()
        person = next(p for p in company.people if p.key in {t.person for t in company.offline})
        engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
        with Session(engine) as session:
            contact_id = session.exec(select(models.Identity.contact_id).where(
                models.Identity.value == email_hash(person.email))).one()  # fmt: skip
            touches = session.exec(
                select(models.Touchpoint.id).where(models.Touchpoint.contact_id == contact_id)
            ).all()
        assert touches
        result = runner.invoke(app, ["forget", "--email", f"  {person.email.upper()} ",
                                     "-c", str(loop.systems.config_path)])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"{len(touches)} touchpoints" in result.output
        with Session(engine) as session:
            assert session.exec(select(models.Identity).where(
                models.Identity.contact_id == contact_id)).all() == []  # fmt: skip
            assert session.exec(select(models.Touchpoint).where(
                models.Touchpoint.identity_value == person.client_id)).all() == []  # fmt: skip
            assert session.exec(select(models.Credit).where(
                models.Credit.touchpoint_id.in_(touches))).all() == []  # type: ignore[attr-defined]  # fmt: skip
            assert session.get(models.Contact, contact_id) is None
        engine.dispose()
    finally:
        loop.systems.stop()


def test_raw_emails_and_phones_never_leave_unhashed_nor_reach_the_store(tmp_path: Path) -> None:
    company = generate(seed=5, contacts=150, visits=1500, deals=40)
    loop = start_loop(tmp_path / "demo", "hubspot", company)
    try:
        _, run = loop.sync()
        assert run.status == "succeeded", run.error
        stored = b"".join(p.read_bytes() for p in loop.workdir.glob("closedloop.db*"))
        requests = [r for name in AD_PLATFORMS for r in loop.systems.emulators[name].log]
        sent = b"\n".join(r.body + r.raw_query.encode() for r in requests)
        assert email_hash(company.people[0].email).encode() in stored
        assert any(email_hash(p.email).encode() in sent for p in company.people)  # hashed: yes
        phones = [normalise_phone(demo_phone(p.key), "1") for p in company.people]
        assert any(sha256_hex("+" + d).encode() in sent for d in phones if d)  # Google's form
        for person in company.people:
            email = person.email.strip()
            forms = {email, email.lower(), quote(email.lower()), quote_plus(email.lower())}
            phone = demo_phone(person.key)
            if phone:
                digits = normalise_phone(phone, "1")
                forms |= {phone, digits, "+" + digits, quote_plus(phone)}
            for form in forms:
                assert form.encode() not in stored, form
                assert form.encode() not in sent, form
    finally:
        loop.systems.stop()
