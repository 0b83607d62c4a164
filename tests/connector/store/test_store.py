"""The store on SQLite and PostgreSQL: natural-key upserts, aware datetimes, the job lock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from connector.kernel.errors import ConfigError
from connector.store import models
from connector.store.database import get_cursor, make_engine, set_cursor, upsert
from connector.store.lock import LockHeld, job_lock


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
