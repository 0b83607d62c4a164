"""Schema versions: Alembic migrations in ``connector/store/migrations``.

A store is brought to the newest revision (the head) with :func:`upgrade`: an empty database gets
every table, one made by an earlier version with ``create_all`` (no ``alembic_version`` table)
gets the tables and columns it lacks, is stamped at the baseline and upgraded from there: so a
revision after the baseline must be idempotent (it may find its change made already, and
must then still do the rest, such as dropping an index it replaces). The single-company path
upgrades at start; a fleet's workers only check (:func:`require_head`), as ``closedloop
migrate`` does the upgrade once for every account, before the workers start.

A new schema change is a new revision file:
``alembic -c connector/store/alembic.ini upgrade head``, then ``... revision --autogenerate -m
"what changed"`` (alembic.ini beside this module).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from connector.kernel.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE_TABLE = "sync_run"  # present in every store closedloop ever made
BASELINE = "0001_baseline"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def head() -> str:
    """The newest revision the code knows."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None, "connector/store/migrations has no revision"
    return found


def current(engine: Engine | Connection) -> str | None:
    """The store's revision; None for an empty store or one made before migrations."""
    if isinstance(engine, Connection):
        return MigrationContext.configure(engine).get_current_revision()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the store to the head (nothing to do when it is there already).

    Two processes starting on one new store may race: the loser's error is ignored when the
    winner left the store at the head."""
    if current(engine) == head():
        return
    try:
        _upgrade(engine)
    except DBAPIError:
        if current(engine) != head():
            raise


def _upgrade(engine: Engine) -> None:
    from connector.store.database import add_missing_columns  # database imports this module

    made_by_create_all = inspect(engine).has_table(BASELINE_TABLE) and current(engine) is None
    if made_by_create_all:  # what start-up did before migrations, then it is the baseline
        SQLModel.metadata.create_all(engine)
        add_missing_columns(engine)
    with engine.begin() as conn:
        if made_by_create_all:
            command.stamp(_config(conn), BASELINE)
        command.upgrade(_config(conn), "head")


def require_head(engine: Engine, where: str) -> None:
    """Refuse to run on a store that is not at the head (a fleet's workers never migrate)."""
    try:
        found = current(engine)
    except DBAPIError as exc:
        raise ConfigError(f"{where}: cannot read the store's schema version: {exc.orig}") from None
    if found != head():
        state = "has no closedloop tables" if found is None else f"is at revision {found}"
        raise ConfigError(
            f"{where}: the store {state}, the code needs revision {head()}; run "
            "`closedloop migrate --all` (or --account NAME) first"
        )
