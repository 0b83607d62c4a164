"""What a run says about itself, through the CLI: a dry run changes nothing, preflights come
first, partial and incomplete runs say what they did, unknown runs and stores are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, inspect, select, text
from sqlmodel import Session, SQLModel
from typer.testing import CliRunner

from connector.cli import app
from connector.demo.synthetic import Company, generate
from connector.store import models
from connector.store.database import make_engine
from tests.e2e.crm_loop import Loop, start_loop

runner = CliRunner()


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=17, contacts=60, visits=600, deals=15)


@pytest.fixture
def loop(tmp_path: Path, company: Company) -> Iterator[Loop]:
    running = start_loop(tmp_path / "demo", "hubspot", company)
    yield running
    running.systems.stop()


def edit_config(loop: Loop, change: Any) -> str:
    path = loop.systems.config_path
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


def store_snapshot(url: str) -> dict[str, list[Any]]:
    """Every row of every table, in a comparable form."""
    engine = make_engine(url)
    with engine.connect() as conn:
        snapshot = {
            name: sorted(map(repr, conn.execute(select(table)).all()))
            for name, table in SQLModel.metadata.tables.items()
            if name != "lock"
        }
    engine.dispose()
    return snapshot


def test_dry_run_changes_nothing_anywhere_and_says_what_it_would_do(
    loop: Loop, store_url: str
) -> None:
    config = edit_config(loop, lambda c: c["store"].update(url=store_url))

    dry = cli("sync", "-c", config, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Dry run (nothing was saved or sent)" in dry.output
    assert "changes would be written" in dry.output and "cl_first_touch_channel" in dry.output
    assert "dry run) (dry run" not in dry.output
    engine = create_engine(store_url)
    assert inspect(engine).get_table_names() == []  # not even a new store's tables
    engine.dispose()
    assert loop.writes() == [] and loop.crm.requests("POST", "/crm/v3/properties") == []

    real = cli("sync", "-c", config)
    assert real.exit_code == 0, real.output
    after_sync = store_snapshot(store_url)
    assert after_sync["touchpoint"] and after_sync["credit"] and after_sync["cursor"]
    record = next(iter(loop.crm_state()))
    loop.probe.edit(record, cl_last_touch_channel="Edited by a rep")
    loop.crm.clear_log()

    again = cli("sync", "-c", config, "--dry-run")
    assert again.exit_code == 0, again.output
    assert "Edited by a rep" in again.output  # the change it would revert
    only = cli("sync", "-c", config, "--dry-run", "--only", "extract")
    assert only.exit_code == 0, only.output
    assert "touchpoints" in only.output and "changes would be written" not in only.output
    assert store_snapshot(store_url) == after_sync
    assert loop.writes() == []


def test_preflights_run_before_the_first_step(loop: Loop) -> None:
    mapping = loop.workdir / "mappings" / "hubspot.yaml"
    data = yaml.safe_load(mapping.read_text())
    data["create_missing_fields"] = False
    data["fields"].append({"field": "no_such_property", "value": "touch_count"})
    mapping.write_text(yaml.safe_dump(data, sort_keys=False))
    config = str(loop.systems.config_path)
    result = cli("sync", "-c", config)
    assert result.exit_code == 2, result.output
    assert "hubspot.yaml:" in result.output and "no_such_property" in result.output
    assert loop.ga4.requests("POST") == []  # no report was read
    assert loop.crm.requests("POST", "/search") == []  # nor a contact
    engine = make_engine(f"sqlite:///{loop.workdir / 'closedloop.db'}")
    with Session(engine) as session:
        assert session.exec(select(models.Touchpoint)).all() == []
        assert session.exec(select(models.Cursor)).all() == []
    engine.dispose()

    mapping.write_text(yaml.safe_dump({**data, "fields": data["fields"][:-1]}, sort_keys=False))
    loop.crm.access_token = "rotated"
    result = cli("sync", "-c", config)
    assert result.exit_code == 2, result.output
    assert loop.ga4.requests("POST") == []


def test_failed_records_end_partial_with_their_own_exit_code(loop: Loop) -> None:
    deleted: list[str] = []

    def delete_one_record_of_the_first_batch(req: Any) -> None:
        if req.path.endswith("/contacts/batch/update") and not deleted:
            deleted.append(req.json()["inputs"][0]["id"])
            loop.crm.delete_contact(deleted[0])

    loop.crm.on_request = delete_one_record_of_the_first_batch
    config = str(loop.systems.config_path)
    result = cli("sync", "-c", config)
    assert result.exit_code == 6, result.output
    assert "partial" in result.output and "1 records failed to write" in result.output
    runs = cli("runs", "-c", config)
    assert "partial" in runs.output
    show = cli("runs", "-c", config, "show", "1")
    assert "Write failures" in show.output and deleted[0] in show.output


def test_rejected_input_rows_are_kept_on_the_run_and_shown(loop: Loop) -> None:
    with (loop.workdir / "offline_touchpoints.csv").open("ab") as out:
        out.write(b"ana@example.com,2026-13-01,Events,Expo,expo,offline\n")
        out.write(b"caf\xe9@example.com,2026-11-03,Events,Expo,expo,offline\n")
    lines = len((loop.workdir / "offline_touchpoints.csv").read_bytes().splitlines())
    config = str(loop.systems.config_path)
    result = cli("sync", "-c", config)
    assert result.exit_code == 6, result.output
    assert "2 input rows were rejected" in result.output
    show = cli("runs", "-c", config, "show", "1")
    assert "rejected input rows: 2" in show.output
    assert f"offline_touchpoints.csv:{lines - 1}: occurred_at:" in show.output
    assert f"offline_touchpoints.csv:{lines}:4: byte 0xE9 is not UTF-8" in show.output


def test_an_incomplete_run_shows_the_records_it_wrote(tmp_path: Path, company: Company) -> None:
    loop = start_loop(tmp_path / "sf", "salesforce", company)
    try:

        def budget_runs_out_after_the_first_write(req: Any) -> None:
            if req.method == "PATCH" and "/composite/sobjects" in req.path:
                loop.crm.on_request = None
                loop.crm.daily_limit = loop.crm.api_used + 2  # this one, then nothing

        loop.crm.on_request = budget_runs_out_after_the_first_write
        config = str(loop.systems.config_path)
        result = cli("sync", "-c", config)
        assert result.exit_code == 4, result.output
        written = len(loop.probe.batches()[0])
        assert f"{written:,} records updated" in result.output
        show = cli("runs", "-c", config, "show", "1")
        assert "incomplete" in show.output and f"records_written: {written}" in show.output
        assert "field writes: ok" in show.output
    finally:
        loop.systems.stop()


def test_unknown_runs_missing_stores_and_bad_report_options_are_refused(loop: Loop) -> None:
    config = str(loop.systems.config_path)
    store = loop.workdir / "closedloop.db"
    report = cli("report", "-c", config)
    assert report.exit_code == 2 and "no store at" in report.output
    assert not store.exists()  # a report never makes a store

    assert cli("sync", "-c", config).exit_code == 0
    rollback, show = cli("rollback", "999", "-c", config), cli("runs", "-c", config, "show", "999")
    assert rollback.exit_code == show.exit_code == 2
    assert "there is no run 999" in rollback.output and "there is no run 999" in show.output
    engine = make_engine(f"sqlite:///{store}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM sync_run")).scalar() == 1
    engine.dispose()

    backwards = cli("report", "-c", config, "--start", "2026-02-01", "--end", "2026-01-01")
    assert backwards.exit_code == 2 and "is after --end" in backwards.output
    unknown = cli("report", "-c", config, "--model", "magic")
    assert unknown.exit_code == 2 and "unknown model 'magic'" in unknown.output
    assert "sync.models" not in unknown.output
    not_computed = cli("report", "-c", config, "--model", "shapley")
    assert not_computed.exit_code == 2 and "add it to sync.models" in not_computed.output
