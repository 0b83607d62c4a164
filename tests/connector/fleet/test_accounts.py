"""fleet.yaml and the accounts folder: every mistake named with its file and line, each
account's store in a schema of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from connector.fleet.accounts import load_fleet, schema_of
from connector.kernel.errors import ConfigError
from connector.kernel.redact import redact

PG = "postgresql+psycopg://closedloop:s3cret-pw@db:5432/closedloop"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def account(root: Path, name: str, body: str = "crm:\n  kind: hubspot\n") -> Path:
    return write(root / "accounts" / name / "closedloop.yaml", body)


def test_each_account_gets_the_fleet_store_in_its_own_schema(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path / "fleet.yaml", f"store_url: {PG}\n"))
    for name in ("acme", "globex_2"):
        account(tmp_path, name)
    (tmp_path / "accounts" / "notes").mkdir()  # a folder without a config is not an account
    assert fleet.names() == ["acme", "globex_2"]
    url = make_url(fleet.account_url("acme"))
    assert url.query["options"] == "-csearch_path=account_acme"
    assert url.password == "s3cret-pw" and url.database == "closedloop"
    assert schema_of("globex_2") == "account_globex_2"
    assert fleet.limit_group("acme") == "acme" and fleet.config.when_busy == "wait"
    assert "s3cret-pw" not in redact(f"could not connect to {PG}")


def test_fleet_mistakes_are_named_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "fleet.yaml", f"store_url: {PG}\nwhen_busy: later\nbroker: x\n")
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    message = str(caught.value)
    assert f"{path}:2: when_busy" in message and "'wait' or 'drop'" in message
    assert f"{path}:3: broker: unknown key" in message
    sqlite = write(tmp_path / "sqlite.yaml", "accounts: a\nstore_url: sqlite:///x.db\n")
    with pytest.raises(ConfigError, match=rf"{sqlite}:2: store_url: .* PostgreSQL"):
        load_fleet(sqlite)
    missing = write(tmp_path / "env.yaml", "store_url: postgresql://u:${NO_SUCH_PW}@db/x\n")
    with pytest.raises(ConfigError, match=rf"{missing}:1: .*NO_SUCH_PW"):
        load_fleet(missing)


def test_account_mistakes_name_the_folder_or_the_account_file(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path / "fleet.yaml", f"store_url: {PG}\n"))
    bad = account(tmp_path, "Big Co")
    with pytest.raises(ConfigError, match="Big Co.*lower-case letters"):
        fleet.names()
    bad.unlink()
    config = account(tmp_path, "acme", "crm:\n  kind: hubspot\nstore:\n  urll: x\n")
    with pytest.raises(ConfigError, match=rf"{config}:4: store.urll: unknown key"):
        fleet.account("acme")
    with pytest.raises(ConfigError, match="no account 'nobody'"):
        fleet.account("nobody")


def test_the_shipped_example_fleet_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_PASSWORD", "rabbit-pw")
    monkeypatch.setenv("POSTGRES_PASSWORD", "pg-pw")
    example = Path(__file__).resolve().parents[3] / "deploy" / "fleet.example.yaml"
    fleet = load_fleet(example)
    assert fleet.config.broker_url == "amqp://closedloop:rabbit-pw@rabbitmq:5672//"
    assert make_url(fleet.account_url("acme")).password == "pg-pw"


def test_accounts_listed_in_one_file_are_validated_each_with_its_lines(tmp_path: Path) -> None:
    accounts = write(
        tmp_path / "accounts.yaml",
        "accounts:\n"
        "  - name: acme\n"
        "    crm:\n"
        "      kind: hubspot\n"
        "      settings: {access_token: pat-1}\n"
        "  - name: globex\n"
        "    crm:\n"
        "      kind: hubspot\n"
        "      settings: {access_token: pat-2, hots: x}\n",
    )
    fleet_file = write(tmp_path / "fleet.yaml", f"store_url: {PG}\naccounts: accounts.yaml\n")
    fleet = load_fleet(fleet_file)
    assert fleet.names() == ["acme", "globex"]
    acme = fleet.account("acme")
    assert acme.crm_settings.access_token.get_secret_value() == "pat-1"
    assert "account_acme" in acme.store_url()
    with pytest.raises(ConfigError, match=rf"{accounts}:9: accounts.1.crm.settings.hots: unknown"):
        fleet.account("globex")
    accounts.write_text("accounts:\n  - name: acme\n  - name: acme\n")
    with pytest.raises(ConfigError, match=rf"{accounts}:3: accounts.1.name: .*listed twice"):
        fleet.names()
