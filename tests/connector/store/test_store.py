"""The store on SQLite and PostgreSQL: natural-key upserts, aware datetimes, the job lock."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, DateTime, Engine, event, func, inspect
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from connector.kernel.errors import ConfigError
from connector.store import database, models
from connector.store.database import make_engine
from connector.store.keyfilter import KeyFilter
from connector.store.lock import LockHeld, job_lock
from connector.store.staged import MERGE_CACHE_KIB, SORT_CACHE_KIB, Staged
from connector.store.writes import get_cursor, set_cursor, upsert


def spend_row(cost: float) -> dict[str, object]:
    return {
        "platform": "google_ads",
        "account": "1",
        "campaign_id": "9",
        "campaign": "Spring",
        "day": date(2026, 11, 1),
        "cost": cost,
        "currency": "USD",
        "cost_base": cost,
        "clicks": 3,
        "impressions": 30,
        "channel": "Paid Search",
    }


def test_restated_spend_upserts_on_natural_key(engine: Engine) -> None:
    with Session(engine) as session:
        upsert(
            session, models.Spend, [spend_row(10.0)], ["platform", "account", "campaign_id", "day"]
        )
        upsert(
            session, models.Spend, [spend_row(12.5)], ["platform", "account", "campaign_id", "day"]
        )
        session.commit()
        rows = session.exec(select(models.Spend)).all()
    assert [r.cost for r in rows] == [12.5]


def test_a_key_repeated_in_one_batch_acts_as_rows_one_after_the_other(engine: Engine) -> None:
    """One set-based statement per batch (COPY + INSERT ... SELECT on PostgreSQL): a key given
    twice ends with the last row's values (or once, under DO NOTHING); ids stay put."""
    keys = ["platform", "account", "campaign_id", "day"]
    other = {**spend_row(1.0), "campaign_id": "10"}
    with Session(engine) as session:
        upsert(session, models.Spend, [spend_row(10.0), other, spend_row(11.0)], keys)
        session.commit()
        first = {(r.campaign_id, r.id): r.cost for r in session.exec(select(models.Spend))}
        upsert(session, models.Spend, [spend_row(12.5), spend_row(13.0)], keys)
        upsert(session, models.Forgotten, [
            {"kind": "crm_id", "value": "003A", "forgotten_at": datetime(2026, 11, 1, tzinfo=UTC)},
            {"kind": "crm_id", "value": "003A", "forgotten_at": datetime(2026, 12, 1, tzinfo=UTC)},
        ], ["kind", "value"])  # fmt: skip
        upsert(session, models.DealContact, [{"deal_crm_id": "D1", "contact_crm_id": "003A"}] * 2,
               ["deal_crm_id", "contact_crm_id"])  # fmt: skip
        session.commit()
        after = {(r.campaign_id, r.id): r.cost for r in session.exec(select(models.Spend))}
        forgotten = session.exec(select(models.Forgotten)).all()
        links = session.exec(select(models.DealContact)).all()
    assert sorted(first.values()) == [1.0, 11.0]
    assert after == {key: 13.0 if key[0] == "9" else 1.0 for key in first}
    assert [f.forgotten_at for f in forgotten] == [datetime(2026, 12, 1, tzinfo=UTC)]
    assert len(links) == 1


def test_datetimes_come_back_aware_utc(engine: Engine) -> None:
    paris = timezone(timedelta(hours=1))
    with Session(engine) as session:
        set_cursor(session, "ga4", "touchpoints", datetime(2026, 11, 1, 10, 30, tzinfo=paris))
        session.commit()
        value = get_cursor(session, "ga4", "touchpoints")
    assert value == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    assert value is not None and value.tzinfo is not None


def test_naive_datetime_is_refused(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(Exception, match="naive datetime"):
        set_cursor(session, "ga4", "touchpoints", datetime(2026, 11, 1))  # noqa: DTZ001
        session.commit()


def test_job_lock_is_exclusive_and_released(engine: Engine, store_url: str) -> None:
    other = make_engine(store_url)
    with job_lock(engine, "sync"):
        with pytest.raises(LockHeld, match="already running"):
            with job_lock(other, "sync"):
                pass
        with job_lock(engine, "other-job"):
            pass
    with job_lock(engine, "sync"):
        pass
    other.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://app:hunter2@127.0.0.1/closedloop", "spelled postgresql+psycopg://"),
        ("postgresql+pg8000://app:hunter2@127.0.0.1/closedloop", "spell it postgresql+psycopg://"),
        ("mysql://app:hunter2@127.0.0.1/closedloop", "driver (MySQLdb) is not installed"),
        ("not a url", "not a database URL"),
        ("sqlite:////proc/closedloop-store.db", "unable to open database file"),
    ],
)
def test_store_url_problems_are_configuration_errors_without_the_password(
    url: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_engine(url)
    assert str(caught.value).startswith("store.url")
    assert expected in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_missing_folder_is_named_and_a_read_only_command_creates_no_store(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=f"the folder {tmp_path / 'nope'} does not exist"):
        make_engine(f"sqlite:///{tmp_path}/nope/store.db")
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    with pytest.raises(ConfigError, match="does not exist"):
        make_engine(f"sqlite:///{a_file}/store.db")
    with pytest.raises(ConfigError, match="there is no store at"):
        make_engine(f"sqlite:///{tmp_path}/store.db", create=False)
    assert list(tmp_path.iterdir()) == [a_file]


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_postgresql_database_that_does_not_exist_is_named(store_url: str) -> None:
    url = make_url(store_url).set(password="hunter2", database="closedloop_no_such_db")
    with pytest.raises(ConfigError) as caught:
        make_engine(url.render_as_string(hide_password=False))
    message = str(caught.value)
    assert message.startswith("store.url") and "closedloop_no_such_db" in message
    assert "does not exist" in message and "hunter2" not in message


def test_an_older_store_gets_the_columns_it_lacks(store_url: str) -> None:
    """A store made before a column existed (and before migrations): the engine adds it,
    filling existing rows."""
    engine = make_engine(store_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.exec_driver_sql("DROP INDEX ix_touchpoint_origin")
        conn.exec_driver_sql("ALTER TABLE touchpoint DROP COLUMN origin")
        conn.exec_driver_sql("ALTER TABLE deal DROP COLUMN close_day_end")
        conn.exec_driver_sql(
            "INSERT INTO touchpoint (source, key, occurred_at, identity_kind, identity_value, "
            "utm_source, utm_medium, utm_campaign, landing_page, campaign_id, preset_channel, "
            "channel, campaign_key, superseded) VALUES ('ga4', 'k1', '2026-11-01 10:00:00', "
            "'ga_client_id', '1.2', '', '', '', '', '', '', 'Direct', '', false)"
        )
    engine.dispose()
    engine = make_engine(store_url)
    try:
        indexes = {i["name"] for i in inspect(engine).get_indexes("touchpoint")}
        assert "ix_touchpoint_origin" in indexes
        with Session(engine) as session:
            touch = session.exec(select(models.Touchpoint)).one()
            assert touch.origin == "" and touch.key == "k1"
            moment = datetime(2026, 11, 1, tzinfo=UTC)
            session.add(models.Deal(crm_object="deals", crm_id="d1", created_at=moment,
                                    updated_at=moment, close_day_end=moment))  # fmt: skip
            session.commit()
            assert session.exec(select(models.Deal)).one().close_day_end == moment
    finally:
        engine.dispose()


def touch_row(key: str, at: datetime, value: str = "v") -> dict[str, object]:
    return {
        "source": "offline_csv",
        "key": key,
        "occurred_at": at,
        "identity_kind": "email_sha256",
        "identity_value": value,
        "origin": "offline",
    }


TOUCH_COLUMNS = list(touch_row("", datetime(2026, 1, 1, tzinfo=UTC)))
TOUCH_KEYS = ["source", "key"]


def stage(session: Session, *rows: dict[str, object]) -> Staged:
    staged = Staged(session, models.Touchpoint, TOUCH_COLUMNS, TOUCH_KEYS)
    staged.add([tuple(row.values()) for row in rows])
    return staged


def test_staged_rows_merge_in_one_statement(engine: Engine) -> None:
    """Batches staged apart merge as one upsert: a key given twice (in two batches) ends with
    the last row's values, in the place of the first; new rows get ids in the order given (not
    in key order, which differs between backends' collations); nothing reaches the table
    before the merge."""
    at = datetime(2026, 11, 1, 9, tzinfo=UTC)
    with Session(engine) as session:
        upsert(session, models.Touchpoint, [touch_row("a", at, "old")], ["source", "key"])
        session.commit()
        staged = stage(
            session, *(touch_row(k, at + timedelta(hours=i)) for i, k in enumerate("dcB"))
        )
        staged.add(
            [tuple(touch_row(*row).values()) for row in (("a", at, "new"), ("c", at, "second c"))]
        )
        assert session.exec(select(func.count()).select_from(models.Touchpoint)).one() == 1
        staged.merge()
        session.commit()
        rows = {t.key: t for t in session.exec(select(models.Touchpoint))}
    assert {k: t.identity_value for k, t in rows.items()} == {
        "a": "new", "B": "v", "c": "second c", "d": "v"
    }  # fmt: skip
    assert rows["a"].id < rows["d"].id < rows["c"].id < rows["B"].id
    assert rows["B"].occurred_at == at + timedelta(hours=2)


@pytest.mark.parametrize("batches", [1, 3])
@pytest.mark.parametrize("held", [True, False], ids=["into-rows", "into-an-empty-table"])
def test_merging_batch_by_batch_ends_as_one_merge(engine: Engine, batches: int, held: bool) -> None:
    """Merged batch by batch (as a source's load does) or once, into a table that holds rows
    or into an empty one (whose key index is dropped and built after the load, keys repeated
    in the load merged first): the same rows, values and id order; a complete read still
    finds only the rows from before the load that it did not hold; the key is unique after."""
    at = datetime(2026, 11, 1, 9, tzinfo=UTC)
    before = ["old", "a"] if held else []
    with Session(engine) as session:
        if held:
            upsert(session, models.Touchpoint, [touch_row(k, at) for k in before], TOUCH_KEYS)
            session.commit()
        rows = [touch_row(k, at, v) for k, v in ("cv", "b1", "a2", "b3", "dv", "c4")]
        staged = Staged(session, models.Touchpoint, TOUCH_COLUMNS, TOUCH_KEYS)
        size = len(rows) // batches
        for start in range(0, len(rows), size):
            staged.add([tuple(r.values()) for r in rows[start : start + size]])
            if start + size < len(rows):
                staged.merge(final=False)
        ids = {t.id: t.key for t in session.exec(select(models.Touchpoint))}
        gone = [ids[i] for i in staged.missing("origin", "offline")]
        staged.merge()
        session.commit()
        stored = session.exec(select(models.Touchpoint).order_by(models.Touchpoint.id)).all()
    assert gone == before[:1]
    new = [k for k in "cbad" if k not in before]  # in read order
    assert [t.key for t in stored] == before + new
    assert {t.key: t.identity_value for t in stored} == {
        **dict.fromkeys(before, "v"), "a": "2", "b": "3", "c": "4", "d": "v"
    }  # fmt: skip
    with Session(engine) as session:  # a touch added after the load: an id after theirs
        upsert(session, models.Touchpoint, [touch_row("e", at)], TOUCH_KEYS)
        session.commit()
        last = session.exec(select(models.Touchpoint).order_by(models.Touchpoint.id)).all()[-1]
        assert last.key == "e" and last.id > stored[-1].id
    with Session(engine) as session, pytest.raises(IntegrityError):
        session.add(models.Touchpoint(**touch_row("b", at)))  # type: ignore[arg-type]
        session.flush()


def test_a_first_load_rebuilds_the_plain_indexes_in_its_transaction(engine: Engine) -> None:
    """A load into an empty table drops the key's unique index and the plain indexes (on
    SQLite those led by a column it gives: touch time and origin) and builds them again after
    the merge; a rollback leaves the table and its indexes as they were."""
    at = datetime(2026, 11, 1, 9, tzinfo=UTC)
    indexes = {str(i.name) for i in database.table_of(models.Touchpoint).indexes}

    def present(conn: Connection | Engine = engine) -> set[str]:
        return {str(i["name"]) for i in inspect(conn).get_indexes("touchpoint")} & indexes

    def unique() -> list[list[str]]:
        return [i["column_names"] for i in inspect(engine).get_indexes("touchpoint") if i["unique"]]

    assert unique() == [["source", "key"]]
    kept = {"ix_touchpoint_channel", "ix_touchpoint_journey"}
    with Session(engine) as session:
        staged = stage(session, touch_row("a", at), touch_row("b", at))
        staged.merge(final=False)
        during = present(session.connection())
        staged.merge()
        session.rollback()
    assert during == (set() if engine.dialect.name == "postgresql" else kept)
    assert present() == indexes and unique() == [["source", "key"]]
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(models.Touchpoint)).one() == 0
        stage(session, touch_row("a", at), touch_row("b", at)).merge()
        session.commit()
        journey = select(models.Touchpoint.key).order_by(models.Touchpoint.occurred_at)
        assert session.exec(journey).all() == ["a", "b"]
    assert present() == indexes and unique() == [["source", "key"]]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # SQLite settings
def test_a_load_gives_its_page_cache_and_sort_threads_back(engine: Engine) -> None:
    """A load merges with a larger page cache and builds its indexes with a small one and
    sort threads; it gives the store's settings back at its final merge, or with the
    connection when it stops before (a rollback, or a failure while it builds)."""
    at = datetime(2026, 11, 1, 9, tzinfo=UTC)
    building: list[tuple[int, int]] = []  # SQLite's settings at each key index build
    fail = False

    def pragmas(conn: Connection) -> tuple[int, int]:
        cache = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
        return int(cache), int(conn.exec_driver_sql("PRAGMA threads").scalar_one())

    def built(_conn: Connection, cursor: Any, statement: str, *_args: object) -> None:
        if "CREATE UNIQUE INDEX" in statement:  # read on the DB-API connection
            cache, threads = (
                cursor.connection.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("cache_size", "threads")
            )
            building.append((cache, threads))
            if fail:
                raise RuntimeError("stopped while building")

    event.listen(engine, "before_cursor_execute", built)
    try:
        for final in (True, False):
            with Session(engine) as session:
                staged = stage(session, touch_row("a", at))
                staged.merge(final=False)
                assert pragmas(session.connection()) == (-MERGE_CACHE_KIB, 0)
                if final:
                    staged.merge()
                    assert pragmas(session.connection()) == (-database.CACHE_KIB, 0)
                session.rollback()
            with engine.connect() as conn:  # the pool's one connection, back
                assert pragmas(conn) == (-database.CACHE_KIB, 0)
        fail = True
        with Session(engine) as session, pytest.raises(RuntimeError, match="while building"):
            stage(session, touch_row("a", at)).merge()
        with engine.connect() as conn:
            assert pragmas(conn) == (-database.CACHE_KIB, 0)
    finally:
        event.remove(engine, "before_cursor_execute", built)
    assert building == [(-SORT_CACHE_KIB, os.cpu_count() or 1)] * 2


def test_a_new_sqlite_store_gets_larger_pages_and_an_older_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    """16 KiB pages for a new file; a file that holds tables cannot change its pages (without
    a VACUUM) and is used as it is."""
    older = tmp_path / "older.db"
    with closing(sqlite3.connect(older)) as conn:  # a store made with SQLite's defaults
        conn.execute("CREATE TABLE made_before (id INTEGER PRIMARY KEY)")
        conn.commit()
    for path, size in ((tmp_path / "new.db", database.PAGE_BYTES), (older, 4096)):
        engine = make_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == size
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        engine.dispose()


def test_sqlite_datetimes_are_bound_as_sqlalchemy_stores_them() -> None:
    """The fast SQLite bind gives the very text SQLAlchemy's own DATETIME writes (what every
    range query on a stored time compares with)."""
    dialect = sqlite.dialect()
    ours = models.UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    for value in (
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 123, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 6, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
    ):
        assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        ours(datetime(2026, 1, 2))  # noqa: DTZ001


def test_a_complete_read_finds_the_rows_it_no_longer_holds_and_rewrites_only_changed_ones(
    engine: Engine,
) -> None:
    at = datetime(2026, 11, 1, 9, tzinfo=UTC)

    def read(*rows: dict[str, object]) -> tuple[list[str], int]:
        with Session(engine) as session:
            staged = stage(session, *rows)
            gone = staged.missing("origin", "offline")
            keys = {t.id: t.key for t in session.exec(select(models.Touchpoint))}
            written = staged.merge()
            session.commit()
        return sorted(keys[i] for i in gone), written

    assert read(touch_row("a", at), touch_row("b", at)) == ([], 2)
    # what later steps set (channel, campaign, superseded) is no part of a read: kept
    with Session(engine) as session:
        for touch in session.exec(select(models.Touchpoint)):
            touch.channel, touch.campaign_key, touch.superseded = "Events", "SaaStr", True
            session.add(touch)
        session.commit()
    assert read(touch_row("a", at), touch_row("b", at)) == ([], 0)  # unchanged: nothing written
    assert read(touch_row("a", at, "edited")) == (["b"], 1)  # b no longer read; a changed
    with Session(engine) as session:
        a = session.exec(select(models.Touchpoint).where(models.Touchpoint.key == "a")).one()
    assert (a.identity_value, a.channel, a.campaign_key, a.superseded) == (
        "edited", "Events", "SaaStr", True
    )  # fmt: skip


def test_the_key_filter_flags_every_repeated_key_and_few_others() -> None:
    """Repeats within a batch and across batches are all flagged (a repeat left unflagged
    would break the key's unique index); of 200,000 new keys, few are. The suspects are the
    rows of the repeated keys, the first ones included, and few others."""
    key_filter = KeyFilter()
    batches = [
        [("csv", f"k{n}") for n in range(0, 100_000)] + [("csv", "k7"), ("csv", "k7")],
        [("csv", f"k{n}") for n in range(100_000, 200_000)] + [("csv", "k99999"), ("ga", "k7")],
    ]
    flagged = [list(key_filter.maybe_seen(batch, len(batch))) for batch in batches]
    assert {100_000, 100_001} <= set(flagged[0])
    assert 100_000 in flagged[1] and 100_001 not in flagged[1]  # ("ga", "k7") is new
    assert len(flagged[0]) + len(flagged[1]) < 100
    # every row of a repeated key, by its place in the load: k7 and its two repeats, k99999
    # and its repeat in the second batch (which starts at 100,002)
    suspects = set(key_filter.suspects().tolist())
    assert {7, 100_000, 100_001, 99_999, 100_002 + 100_000} <= suspects
    assert len(suspects) < 200
    key_filter.close()
