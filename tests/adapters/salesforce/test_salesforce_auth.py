"""Login flows of SalesforceCrm: password (SOAP) and JWT bearer, with one re-login on 401."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.salesforce.adapter import SalesforceCrm
from adapters.salesforce.emulator import Emulator
from connector.kernel.errors import ConfigError
from connector.kernel.records import RecordUpdate

MakeAdapter = Callable[..., SalesforceCrm]


def password_settings(emu: Emulator, password: str | None = None) -> dict[str, object]:
    return {
        "session_id": None,
        "instance_url": None,
        "username": emu.username,
        "password": password or emu.password,
        "security_token": emu.security_token,
        "login_url": emu.url,
    }


@pytest.fixture(scope="module")
def key_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture
def jwt_settings(emu: Emulator, key_pair: tuple[bytes, bytes], tmp_path: Path) -> dict[str, object]:
    private, public = key_pair
    emu.jwt_public_key = public
    key_file = tmp_path / "server.key"
    key_file.write_bytes(private)
    return {
        "session_id": None,
        "instance_url": None,
        "username": emu.username,
        "consumer_key": emu.consumer_key,
        "private_key_file": key_file,
        "login_url": emu.url,
    }


def test_password_login_reads_through_the_returned_instance(
    emu: Emulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(**password_settings(emu))
    assert len(list(adapter.contacts(None, ["Email"]))) == 60
    (login,) = emu.requests("POST", "/services/Soap/u/59.0")
    assert b"<n1:password>demotok</n1:password>" in login.body
    assert emu.logins == 1
    assert all(
        r.headers["authorization"] != f"Bearer {emu.session_id}"
        for r in emu.requests("GET", "/services/data/")
    )


@pytest.mark.parametrize("flow", ["password", "jwt"])
def test_one_relogin_after_the_session_expired(
    emu: Emulator, make_adapter: MakeAdapter, jwt_settings: dict[str, object], flow: str
) -> None:
    adapter = make_adapter(**(password_settings(emu) if flow == "password" else jwt_settings))
    adapter.describe_fields("Contact")
    emu.expire_session()
    people = list(adapter.contacts(None, ["Email"]))
    assert len(people) == 60 and emu.logins == 2
    login_path = "/services/Soap/u/" if flow == "password" else "/services/oauth2/token"
    assert len(emu.requests("POST", login_path)) == 2


@pytest.mark.parametrize("flow", ["password", "jwt"])
def test_relogin_that_does_not_help_is_a_config_error(
    emu: Emulator, make_adapter: MakeAdapter, jwt_settings: dict[str, object], flow: str
) -> None:
    adapter = make_adapter(**(password_settings(emu) if flow == "password" else jwt_settings))
    adapter.describe_fields("Contact")
    emu.expire_session(keep_expiring=True)
    with pytest.raises(ConfigError, match="session expired and re-login failed"):
        adapter.describe_fields("Lead")
    assert emu.logins == 2  # the first login and exactly one re-login


def test_bulk_job_relogs_in_although_bulk2_does_not(
    emu: Emulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(**password_settings(emu), bulk_threshold=0)
    adapter.describe_fields("Contact")
    emu.expire_session()
    contacts = sorted(emu.records["Contact"])[:2]
    results = adapter.write("Contact", [RecordUpdate(c, {"UTM_Source__c": "x"}) for c in contacts])
    assert all(r.ok for r in results) and emu.logins == 2


def test_wrong_password_is_a_config_error_without_secrets(
    emu: Emulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(**password_settings(emu, password="hunter2-secret"))
    with pytest.raises(ConfigError) as caught:
        adapter.describe_fields("Lead")
    text = f"{caught.value} {caught.value.__cause__!r} {caught.value.__context__!r}"
    assert "INVALID_LOGIN" in str(caught.value) and "security token" in str(caught.value)
    assert "hunter2" not in text
    assert len(emu.requests("POST", "/services/Soap")) == 1  # not retried


def test_jwt_signed_by_an_unknown_key_is_a_config_error(
    emu: Emulator, make_adapter: MakeAdapter, jwt_settings: dict[str, object], tmp_path: Path
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "other.key"
    key_file.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    adapter = make_adapter(**(jwt_settings | {"private_key_file": key_file}))
    with pytest.raises(ConfigError, match="invalid_grant"):
        adapter.describe_fields("Lead")


def test_unusable_private_key_file_is_a_config_error(
    emu: Emulator, make_adapter: MakeAdapter, jwt_settings: dict[str, object], tmp_path: Path
) -> None:
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("not a key")
    with pytest.raises(ConfigError, match="cannot sign"):
        make_adapter(**(jwt_settings | {"private_key_file": not_a_key})).describe_fields("Lead")
    with pytest.raises(ConfigError, match="does not exist"):
        missing = jwt_settings | {"private_key_file": tmp_path / "missing.key"}
        make_adapter(**missing).describe_fields("Lead")
    assert not emu.log


def test_login_url_must_be_salesforce(emu: Emulator, make_adapter: MakeAdapter) -> None:
    settings = password_settings(emu) | {"login_url": "https://login.example.com"}
    with pytest.raises(ConfigError, match="login_url"):
        make_adapter(**settings).describe_fields("Lead")
