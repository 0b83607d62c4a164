"""Migrations: an empty store and one made by ``create_all`` both end at the head, whose tables
are the models'; a store not at the head is refused where workers only check."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select
from typer.testing import CliRunner

from connector.cli import app
from connector.kernel.errors import ConfigError
from connector.store import migrate, models
from connector.store.database import make_engine


def test_an_empty_store_is_upgraded_to_the_head_and_matches_the_models(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert migrate.current(engine) == migrate.head()
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
        migrate.require_head(engine, "store")  # nothing to say
    finally:
        engine.dispose()


def test_a_store_made_by_create_all_is_stamped_and_keeps_its_rows(store_url: str) -> None:
    """The store an earlier closedloop made (no alembic_version, a table it never had)."""
    plain = create_engine(store_url)
    SQLModel.metadata.create_all(plain)
    with plain.begin() as conn:
        conn.exec_driver_sql("DROP TABLE forgotten")
    with Session(plain) as session:
        session.add(models.SyncRun(job="sync", started_at=datetime(2026, 11, 1, tzinfo=UTC)))
        session.commit()
    assert migrate.current(plain) is None
    plain.dispose()

    engine = make_engine(store_url)
    try:
        assert migrate.current(engine) == migrate.head()
        assert inspect(engine).has_table("forgotten")
        with Session(engine) as session:
            assert [r.job for r in session.exec(select(models.SyncRun))] == ["sync"]
    finally:
        engine.dispose()


def test_workers_refuse_a_store_that_is_not_at_the_head(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        with pytest.raises(ConfigError, match="has no closedloop tables.*closedloop migrate"):
            migrate.require_head(engine, "account acme")
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
        with pytest.raises(ConfigError, match="account acme: .* at revision 0000_older"):
            migrate.require_head(engine, "account acme")
    finally:
        engine.dispose()


def test_the_migrate_command_brings_a_companys_store_to_the_head(tmp_path: Path) -> None:
    config = tmp_path / "closedloop.yaml"
    config.write_text(
        "store: {url: sqlite:///store.db}\n"
        "crm: {kind: hubspot, settings: {access_token: pat-test}}\n"
    )
    result = CliRunner().invoke(app, ["migrate", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert f"store at revision {migrate.head()}" in result.output
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert migrate.current(engine) == migrate.head()
    finally:
        engine.dispose()
    both = CliRunner().invoke(app, ["migrate", "-c", str(config), "--account", "a", "--all"])
    assert both.exit_code == 2 and "not both" in both.output


def _indexes(engine: object, table: str) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes(table)}  # type: ignore[arg-type]


def test_a_store_at_the_baseline_is_upgraded_to_the_models(store_url: str) -> None:
    """Revisions after the baseline: the audit index by (run, record) replaces the run-only
    one, the journey index the contact-only one, and the write-back digests appear."""
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            command.upgrade(migrate._config(conn), migrate.BASELINE)
        assert "ix_field_write_run_id" in _indexes(engine, "field_write")
        migrate.upgrade(engine)
        assert migrate.current(engine) == migrate.head()
        assert "ix_field_write_run_id" not in _indexes(engine, "field_write")
        assert "ix_touchpoint_contact_id" not in _indexes(engine, "touchpoint")
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    finally:
        engine.dispose()


def test_credits_of_a_store_before_model_codes_keep_their_rows(store_url: str) -> None:
    """0004: the model's name becomes its code, the rows stay, and reading them by name (the
    ORM) gives what was there; a second upgrade finds the work done."""
    engine = create_engine(store_url)
    rows = [(7, 70, "linear", 0.25, 250.0), (7, 71, "first_touch", 1.0, 1000.0)]
    try:
        with engine.begin() as conn:
            command.upgrade(migrate._config(conn), "0003_touchpoint_load")
            for row in rows:
                conn.execute(
                    text(
                        "INSERT INTO credit (deal_id, touchpoint_id, model, fraction, amount) "
                        "VALUES (:d, :t, :m, :f, :a)"
                    ),
                    dict(zip("dtmfa", row, strict=True)),
                )
        migrate.upgrade(engine)
        assert migrate.current(engine) == migrate.head()
        with engine.begin() as conn:
            command.upgrade(migrate._config(conn), "head")  # nothing left to do
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
            codes = conn.exec_driver_sql("SELECT model FROM credit ORDER BY model").scalars()
            assert list(codes) == [0, 3]
        with Session(engine) as session:
            got = session.exec(select(models.Credit)).all()
        assert sorted((c.deal_id, c.touchpoint_id, c.model, c.fraction, c.amount) for c in got) == (
            sorted(rows)
        )
    finally:
        engine.dispose()


def test_a_store_made_before_migrations_loses_the_indexes_replaced(store_url: str) -> None:
    """create_all of an earlier version left ``ix_field_write_run_id``: a planner could pick it
    and settle every batch by scanning the whole run."""
    plain = create_engine(store_url)
    SQLModel.metadata.create_all(plain)
    with plain.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_field_write_run_id ON field_write (run_id)")
        conn.exec_driver_sql("DROP INDEX ix_field_write_run_record")
    plain.dispose()
    engine = make_engine(store_url)
    try:
        indexes = _indexes(engine, "field_write")
        assert "ix_field_write_run_record" in indexes and "ix_field_write_run_id" not in indexes
    finally:
        engine.dispose()


def test_touchpoints_of_a_store_before_the_key_index_keep_their_rows(store_url: str) -> None:
    """0005: the table's unique (source, key) constraint becomes the index ``ux_touchpoint_key``
    (SQLite copies the table): rows, ids and the other indexes stay, the key stays unique, and
    a downgrade gives the constraint back."""
    engine = create_engine(store_url)
    insert = text(
        "INSERT INTO touchpoint (id, source, key, occurred_at, identity_kind, identity_value, "
        "utm_source, utm_medium, utm_campaign, landing_page, campaign_id, preset_channel, "
        "channel, campaign_key, contact_id, superseded, origin) VALUES (:id, 'csv', :key, "
        "'2026-11-01 09:00:00', 'crm_id', '003', '', '', '', '', '', '', 'Events', '', 7, "
        ":superseded, 'offline')"
    )

    def unique() -> tuple[list[list[str]], list[str]]:
        inspector = inspect(engine)
        constraints = [c["column_names"] for c in inspector.get_unique_constraints("touchpoint")]
        found = inspector.get_indexes("touchpoint")  # PostgreSQL lists a constraint's too
        return constraints, [
            str(i["name"]) for i in found if i["unique"] and "duplicates_constraint" not in i
        ]

    try:
        with engine.begin() as conn:
            command.upgrade(migrate._config(conn), "0004_credit_model_code")
            conn.execute(insert, [{"id": 5, "key": "k5", "superseded": False},
                                  {"id": 9, "key": "k9", "superseded": True}])  # fmt: skip
        assert unique() == ([["source", "key"]], [])
        migrate.upgrade(engine)
        assert unique() == ([], ["ux_touchpoint_key"])
        with engine.begin() as conn:
            command.upgrade(migrate._config(conn), "head")  # nothing left to do
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
        with Session(engine) as session:
            got = session.exec(select(models.Touchpoint).order_by(models.Touchpoint.id)).all()
        assert [(t.id, t.key, t.contact_id, t.superseded) for t in got] == [
            (5, "k5", 7, False), (9, "k9", 7, True)
        ]  # fmt: skip
        assert got[0].occurred_at == datetime(2026, 11, 1, 9, tzinfo=UTC)
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"id": 10, "key": "k5", "superseded": False})
        with engine.begin() as conn:
            command.downgrade(migrate._config(conn), "0004_credit_model_code")
        assert unique() == ([["source", "key"]], [])
        assert "ix_touchpoint_journey" in _indexes(engine, "touchpoint")
    finally:
        engine.dispose()
