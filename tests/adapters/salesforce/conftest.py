"""Fixtures for the Salesforce adapter and emulator tests: a seeded org and adapters on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from simple_salesforce.api import Salesforce

import connector.kernel.retry
from adapters.salesforce.adapter import SalesforceCrm, SalesforceSettings
from adapters.salesforce.emulator import Emulator


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connector.kernel.retry, "BACKOFF_SCALE", 0.01)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.seed_sample()
        yield emulator


@pytest.fixture
def make_adapter(emu: Emulator) -> Iterator[Callable[..., SalesforceCrm]]:
    """Build adapters on ``emu`` (session-id auth unless overridden); closed afterwards."""
    made: list[SalesforceCrm] = []

    def make(target: Emulator | None = None, **overrides: Any) -> SalesforceCrm:
        settings = (target or emu).adapter_settings() | overrides
        adapter = SalesforceCrm(SalesforceSettings(**settings))
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


class HttpsToHttp(requests.adapters.HTTPAdapter):
    """simple-salesforce always builds https:// URLs; the emulator speaks http."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:  # type: ignore[override]
        assert request.url
        path = request.url.split("/", 3)[3]
        request.url = f"{self.target}/{path}"
        return super().send(request, **kw)


@pytest.fixture
def client_for() -> Iterator[Callable[[Emulator], Salesforce]]:
    """The real simple-salesforce client on an emulator, session-id auth."""
    sessions: list[requests.Session] = []

    def make(emulator: Emulator) -> Salesforce:
        session = requests.Session()
        sessions.append(session)
        host = emulator.url.removeprefix("http://")
        session.mount(f"https://{host}/", HttpsToHttp(emulator.url))
        session.mount("https://login.salesforce.com/", HttpsToHttp(emulator.url))
        return Salesforce(
            instance=host, session_id=emulator.session_id, session=session, version="59.0"
        )

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def sf(emu: Emulator, client_for: Callable[[Emulator], Salesforce]) -> Salesforce:
    return client_for(emu)


@pytest.fixture
def login_session(emu: Emulator) -> Iterator[requests.Session]:
    """A session that sends login.salesforce.com and the instance to the emulator."""
    with requests.Session() as session:
        session.mount("https://login.salesforce.com/", HttpsToHttp(emu.url))
        session.mount(f"https://{emu.url.removeprefix('http://')}/", HttpsToHttp(emu.url))
        yield session
