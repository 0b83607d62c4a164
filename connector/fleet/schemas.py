"""Each account's schema in the fleet's store: made and migrated by ``closedloop migrate``,
checked (never changed) by a worker at start."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from connector.fleet.accounts import Fleet, schema_of
from connector.kernel.errors import ConfigError
from connector.store import migrate
from connector.store.database import make_engine


def migrate_accounts(fleet: Fleet, names: list[str]) -> None:
    """Create each account's schema if need be and bring it to the head."""
    base = create_engine(fleet.config.store_url)
    try:
        with base.begin() as conn:
            for name in names:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema_of(name)}"'))
    except DBAPIError as exc:
        raise ConfigError(f"{fleet.path}: store_url: {' '.join(str(exc.orig).split())}") from None
    finally:
        base.dispose()
    for name in names:
        make_engine(fleet.account_url(name)).dispose()  # make_engine upgrades to the head


def require_migrated(fleet: Fleet, names: list[str]) -> None:
    """Every account's schema at the head, or one error naming each that is not."""
    problems = []
    for name in names:
        engine = create_engine(fleet.account_url(name))
        try:
            migrate.require_head(engine, f"account {name}")
        except ConfigError as exc:
            problems.append(str(exc))
        finally:
            engine.dispose()
    if problems:
        raise ConfigError("\n".join(problems))
