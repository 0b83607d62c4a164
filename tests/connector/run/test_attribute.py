"""load_journeys and write_credits on a tiny hand-built store, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, select

from connector.attribution import MODELS, credit
from connector.run.attribute import load_journeys
from connector.run.credits import write_credits
from connector.store import models


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def epoch(moment: datetime) -> float:
    return moment.timestamp()


@pytest.fixture
def store(engine: Engine) -> dict[str, int]:
    """Deals D1 (won), D2 (open, linked to a converted lead), D3 (lost, nothing in its window),
    D4/D5 (no amount / negative amount); returns the ids of the rows by name."""
    ids: dict[str, int] = {}
    with Session(engine) as session:

        def add(name: str, row: SQLModel) -> None:
            session.add(row)
            session.flush()
            ids[name] = row.id  # type: ignore[attr-defined]

        def contact(name: str, **extra: object) -> None:
            created = at(10, 1)
            add(
                name,
                models.Contact(
                    crm_object="contact",
                    crm_id=name,
                    created_at=created,
                    updated_at=created,
                    **extra,
                ),
            )

        contact("C1", account_id="acme")
        contact("C2")
        contact("L1", merged_into="C2")  # a lead converted into C2 (its touches moved there)
        contact("C3")
        contact("C4", account_id="acme")  # only in D1's journey when account-based

        def touch(name: str, who: str, when: datetime, channel: str, **extra: object) -> None:
            add(
                name,
                models.Touchpoint(
                    source="ga4",
                    key=name,
                    occurred_at=when,
                    identity_kind="ga_client_id",
                    identity_value=who,
                    channel=channel,
                    contact_id=ids[who],
                    **extra,
                ),
            )

        touch("t1", "C1", at(9, 20), "Display")  # before D1's 30-day window
        touch("t2", "C1", at(10, 5), "Paid Search")
        touch("u1", "C2", at(10, 5), "Direct")  # same time as t2: ordered by id
        touch("t5", "C1", at(10, 10), "Affiliates", superseded=True)
        touch("t6", "C1", at(10, 12), "")  # unclassified
        touch("t3", "C1", at(10, 16), "Email")
        touch("u2", "C2", at(10, 18), "Organic Search")
        touch("w1", "C4", at(10, 20), "Referral")
        touch("u3", "C2", at(10, 25), "Paid Search")
        touch("t4", "C1", at(11, 2), "Video")  # after D1 closed
        touch("v1", "C3", at(6, 1), "Email")  # long before D3's window

        for who, lead in (("C1", "t2"), ("C2", "u2"), ("C3", "v1")):
            session.add(models.ContactJourney(contact_id=ids[who], lead_touch_id=ids[lead]))

        def deal(name: str, amount: float | None, created: datetime, **extra: object) -> None:
            updated = extra.pop("updated_at", created)
            add(
                name,
                models.Deal(
                    crm_object="deal",
                    crm_id=name,
                    amount=amount,
                    amount_base=amount,
                    created_at=created,
                    updated_at=updated,
                    **extra,
                ),
            )

        deal(
            "D1",
            1000.0,
            at(10, 15),
            is_won=True,
            is_closed=True,
            closed_at=at(11, 1),
            account_id="acme",
        )
        deal("D2", 500.0, at(10, 20))
        deal("D3", 0.0, at(10, 1), is_closed=True, updated_at=at(10, 30))  # milestone: updated
        deal("D4", None, at(10, 15), is_won=True, is_closed=True, closed_at=at(11, 1))
        deal("D5", -5.0, at(10, 15), is_won=True, is_closed=True, closed_at=at(11, 1))
        links = [("D1", "C1"), ("D1", "C2"), ("D1", "L1"), ("D2", "L1"), ("D3", "C3")]
        links += [("D4", "C1"), ("D5", "C1")]
        for d, c in links:
            session.add(models.DealContact(deal_crm_id=d, contact_crm_id=c))
        session.commit()
    return ids


def test_journeys_of_deals_from_the_store(engine: Engine, store: dict[str, int]) -> None:
    with Session(engine) as session:
        journeys, touch_ids, deals = load_journeys(session, window_days=30)
    journeys.validate()
    assert deals.id.tolist() == [store["D1"], store["D2"], store["D3"]]
    assert deals.amount.tolist() == [1000.0, 500.0, 0.0]
    # D1: both contacts (C2 also through its converted lead, once); D2: the lead's contact C2.
    path = ["t2", "u1", "t3", "u2", "u3", "u1", "u2"]
    assert touch_ids.tolist() == [store[name] for name in path]
    assert journeys.offsets.tolist() == [0, 5, 7, 7]
    assert journeys.channels == ("Direct", "Email", "Organic Search", "Paid Search")
    assert journeys.direct == 0
    assert journeys.channel.tolist() == [3, 0, 1, 2, 3, 0, 2]
    times = [at(10, 5), at(10, 5), at(10, 16), at(10, 18), at(10, 25), at(10, 5), at(10, 18)]
    assert journeys.ts.tolist() == [epoch(t) for t in times]
    assert journeys.end_ts.tolist() == [epoch(at(11, 1)), epoch(at(10, 20)), epoch(at(10, 30))]
    assert journeys.lead_pos.tolist() == [3, 6, -1]  # D1: the later of C1's and C2's lead touch
    assert journeys.opp_pos.tolist() == [1, 6, -1]  # the last touch by the deal's creation
    assert journeys.converted.tolist() == [True, False, False]


def test_account_based_journeys_add_the_accounts_people(
    engine: Engine, store: dict[str, int]
) -> None:
    with Session(engine) as session:
        journeys, touch_ids, _ = load_journeys(session, window_days=30, account_based=True)
    path = ["t2", "u1", "t3", "u2", "w1", "u3", "u1", "u2"]
    assert touch_ids.tolist() == [store[name] for name in path]
    assert journeys.offsets.tolist() == [0, 6, 8, 8]
    assert journeys.channels[-1] == "Referral"
    assert journeys.lead_pos.tolist() == [3, 7, -1]
    assert journeys.opp_pos.tolist() == [1, 7, -1]


def expected_rows(
    credits: dict[str, Any], journeys: Any, touch_ids: Any, deals: Any
) -> dict[Any, Any]:
    """Per (deal, touch, model): the model's fraction and that share of the deal's amount."""
    expected = {}
    for model, fractions in credits.items():
        for i in np.flatnonzero(fractions > 0):
            deal = int(np.searchsorted(journeys.offsets, i, side="right") - 1)
            share = float(fractions[i])
            key = (int(deals.id[deal]), int(touch_ids[i]), model)
            expected[key] = (share, share * float(deals.amount[deal]))
    return expected


def test_write_credits_replaces_the_credit_rows(engine: Engine, store: dict[str, int]) -> None:
    with Session(engine) as session:
        journeys, touch_ids, deals = load_journeys(session, window_days=30)
        credits = {m: credit(m, journeys) for m in ("linear", "first_touch", "last_touch")}
        for _ in range(2):  # the second write replaces the first
            written = write_credits(session, journeys, touch_ids, deals, credits)
            session.commit()
        rows = session.exec(select(models.Credit)).all()
    got = {(r.deal_id, r.touchpoint_id, r.model): (r.fraction, r.amount) for r in rows}
    expected = expected_rows(credits, journeys, touch_ids, deals)
    assert written == len(rows) == 5 + 2 + 1 + 1 + 1 + 1 == len(expected)
    assert got == expected
    d1, t2, u3 = store["D1"], store["t2"], store["u3"]
    assert got[(d1, t2, "first_touch")] == (1.0, 1000.0)
    assert got[(d1, u3, "linear")] == (0.2, 200.0)


def test_every_models_credits_are_written_as_computed(
    engine: Engine, store: dict[str, int]
) -> None:
    """All models at once (the fresh table is filled model by model, by code): each row is the
    model's fraction of the touch and that fraction of the deal's amount, read back by name."""
    with Session(engine) as session:
        journeys, touch_ids, deals = load_journeys(session, window_days=30)
        credits = {m: credit(m, journeys) for m in reversed(MODELS)}
        written = write_credits(session, journeys, touch_ids, deals, credits)
        session.commit()
        rows = session.exec(select(models.Credit)).all()
        stored = session.connection().exec_driver_sql("SELECT DISTINCT model FROM credit").all()
    got = {(r.deal_id, r.touchpoint_id, r.model): (r.fraction, r.amount) for r in rows}
    expected = expected_rows(credits, journeys, touch_ids, deals)
    assert written == len(rows) == len(expected)
    assert got == expected
    assert sorted(code for (code,) in stored) == list(range(len(MODELS)))


def test_model_codes_are_stable() -> None:
    """Stored credits keep their codes: every model has one, and the first eleven never move."""
    assert models.CREDIT_MODELS[:11] == (
        "first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
        "position_based", "w_shaped", "full_path", "markov", "markov_k", "shapley",
    )  # fmt: skip
    assert set(MODELS) <= set(models.CREDIT_MODELS)
    assert [models.credit_model_code(m) for m in ("first_touch", "shapley")] == [0, 10]
    with pytest.raises(ValueError, match="unknown attribution model 'nope'"):
        models.credit_model_code("nope")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # a SQLite setting
def test_writing_credits_leaves_sqlites_secure_delete_as_it_was(
    engine: Engine, store: dict[str, int]
) -> None:
    with Session(engine) as session:
        conn = session.connection()
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
        journeys, touch_ids, deals = load_journeys(session, window_days=30)
        write_credits(session, journeys, touch_ids, deals, {"linear": credit("linear", journeys)})
        assert conn.exec_driver_sql("PRAGMA secure_delete").one() == (1,)
        session.commit()


def test_a_closed_deals_journey_runs_to_the_end_of_its_close_day(
    engine: Engine, store: dict[str, int]
) -> None:
    """D1 closed on 1 Nov; with its close day ending 2 Nov 00:00 (a CRM east of UTC would end
    it later), t4 at 2 Nov 00:00 is the next day: out; a close day ending a second later: in."""
    for end, inside in ((at(11, 2), False), (at(11, 2) + timedelta(seconds=1), True)):
        with Session(engine) as session:
            d1 = session.get(models.Deal, store["D1"])
            assert d1 is not None
            d1.close_day_end = end
            session.add(d1)
            session.commit()
            journeys, touch_ids, _ = load_journeys(session, window_days=30)
        first = touch_ids[: journeys.offsets[1]].tolist()
        assert (store["t4"] in first) == inside
        assert journeys.end_ts[0] == epoch(end)


def test_a_journey_starts_exactly_a_window_before_its_milestone(
    engine: Engine, store: dict[str, int]
) -> None:
    """D1 closes 1 Nov; t1 (20 Sep) opens its journey with a window of exactly 42 days and is
    out a microsecond short of it (the store's read keeps a margin, NumPy the exact bound)."""
    for days, short, inside in ((42, timedelta(0), True), (42, timedelta(microseconds=1), False)):
        with Session(engine) as session:
            d1 = session.get(models.Deal, store["D1"])
            assert d1 is not None
            d1.closed_at = at(9, 20) + timedelta(days=days) + short
            session.add(d1)
            session.commit()
            journeys, touch_ids, _ = load_journeys(session, window_days=days)
        assert (touch_ids[0] == store["t1"]) == inside
