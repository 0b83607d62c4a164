"""Secrets never leave the process; a person can be forgotten."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, quote_plus

from sqlmodel import Session, select
from typer.testing import CliRunner

from connector.cli import app
from connector.demo.emulators import AD_PLATFORMS, TOKENS, demo_phone
from connector.demo.synthetic import generate
from connector.kernel.identity import email_hash, normalise_phone, sha256_hex
from connector.store import models
from connector.store.database import make_engine
from tests.e2e.crm_loop import start_loop

runner = CliRunner()


def test_no_output_of_a_full_run_contains_a_secret(tmp_path: Path) -> None:
    loop = start_loop(
        tmp_path / "demo", "hubspot", generate(seed=21, contacts=60, visits=600, deals=15)
    )
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
        text = "\n".join(r.output for r in outputs)
        stored = b"".join(p.read_bytes() for p in loop.workdir.glob("closedloop.db*"))
        for secret in TOKENS.values():
            assert secret not in text, secret
            assert secret.encode() not in stored, secret
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
