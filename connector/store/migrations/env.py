"""Alembic's entry point. closedloop hands over its own connection (see
:mod:`connector.store.migrate`; on PostgreSQL its ``search_path`` names the account's schema);
the ``alembic`` command line (new revisions) connects to ``sqlalchemy.url`` of alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlmodel import SQLModel

from connector.store import models  # noqa: F401 - the tables, for autogenerate


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """Autogenerate looks at closedloop's tables only (not serve's scheduler_job, nor the lock
    table of early versions)."""
    return type_ != "table" or name in SQLModel.metadata.tables


def run(connection: Connection) -> None:
    # SQLite alters a table by copying it ("batch" mode); other databases alter in place.
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    with create_engine(context.config.get_main_option("sqlalchemy.url", "")).begin() as conn:
        run(conn)
