"""Shared fixtures: store URLs (SQLite always, PostgreSQL in CI), fast retries."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

BASE_PG_URL = os.environ.get(
    "CLOSEDLOOP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Parallel test processes (pytest-xdist) each get a database of their own: `test_gw0`, ...
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_BASE = make_url(BASE_PG_URL)
PG_URL = (
    _BASE.set(database=f"{_BASE.database}_{WORKER}").render_as_string(hide_password=False)
    if WORKER
    else BASE_PG_URL
)


def _postgres_available() -> str | None:
    try:
        if WORKER:
            _create_database(PG_URL)
        engine = create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {exc}"


def _create_database(url: str) -> None:
    """Create the worker's database once, from the server's maintenance database."""
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists.scalar() is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A clean store URL on each backend. PostgreSQL may be skipped only outside CI."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
        return
    problem = _postgres_available()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {PG_URL}: {problem}")
        pytest.skip(f"PostgreSQL not reachable ({problem})")
    _drop_tables()
    yield PG_URL
    _drop_tables()


def _drop_tables() -> None:
    engine = create_engine(PG_URL)
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    from connector.store.database import make_engine

    engine = make_engine(store_url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    import connector.kernel.retry

    monkeypatch.setattr(connector.kernel.retry, "BACKOFF_SCALE", 0.01)
