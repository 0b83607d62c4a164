"""A source's stream into the store (SQLite and PostgreSQL): staged, then merged with its cursor
in one transaction, so a stop half-way leaves the store as it was."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, func, inspect, select
from sqlmodel import Session

import connector.run.extract as extract
from connector.config.loader import load_config
from connector.demo.emulators import shipped_folder
from connector.kernel.errors import Interrupted
from connector.run.context import build_context
from connector.store import models
from connector.store.database import table_of
from connector.store.writes import get_cursor

ROWS = [
    f"person{n}@example.com,,2026-11-0{n % 9 + 1},Events,Summit,trade_show,offline,"
    for n in range(7)
]


def offline_context(tmp_path: Path, store_url: str) -> Any:
    (tmp_path / "touches.csv").write_text(
        "email,crm_id,occurred_at,channel,campaign,source,medium,note\n" + "\n".join(ROWS) + "\n"
    )
    config = {
        "store": {"url": store_url},
        "crm": {"kind": "hubspot", "settings": {"access_token": "x", "host": "http://127.0.0.1:9"}},
        "sources": [{"name": "offline", "kind": "csv_files",
                     "settings": {"touchpoints_file": "touches.csv"}}],
        "mappings": {"channels": str(shipped_folder("mappings") / "channels.yaml"),
                     "crm": str(shipped_folder("mappings") / "hubspot.yaml")},
    }  # fmt: skip
    (tmp_path / "closedloop.yaml").write_text(yaml.safe_dump(config))
    return build_context(load_config(tmp_path / "closedloop.yaml"))


def stored(engine: Engine) -> tuple[int, datetime | None]:
    with Session(engine) as session:
        count = session.execute(select(func.count()).select_from(models.Touchpoint)).scalar()
        return count or 0, get_cursor(session, "offline", "touchpoints")


def test_a_stop_half_way_through_a_stream_leaves_the_store_as_it_was(
    tmp_path: Path, store_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract, "SOURCE_BATCH", 2)
    ctx = offline_context(tmp_path, store_url)
    source = ctx.sources["offline"]
    read = source.touchpoints
    switch, during = sys.getswitchinterval(), []

    def stopped_after_three(since: datetime) -> Iterator[Any]:
        for n, touch in enumerate(read(since)):
            during.append(sys.getswitchinterval())
            if n == 3:  # in the second batch: the first one is staged, not stored
                ctx.stop.set()
            yield touch

    monkeypatch.setattr(source, "touchpoints", stopped_after_three)
    try:
        with pytest.raises(Interrupted):
            extract.extract_source(ctx, "offline", source)
        assert stored(ctx.engine) == (0, None)
        # the load switches threads more often while it runs, and gives the interval back
        assert set(during) == {extract.LOAD_SWITCH_SECONDS} != {switch}
        assert sys.getswitchinterval() == switch
        # the first batch was merged (SQLite) with the plain indexes dropped: they are back
        names = {i["name"] for i in inspect(ctx.engine).get_indexes("touchpoint")}
        assert {str(i.name) for i in table_of(models.Touchpoint).indexes} <= names

        ctx.stop.clear()
        monkeypatch.setattr(source, "touchpoints", read)
        extract.extract_source(ctx, "offline", source)
        count, cursor = stored(ctx.engine)
    finally:
        ctx.close()
    assert count == len(ROWS) and cursor is not None
