"""Planning touchpoint records on a small hand-built store (SQLite and PostgreSQL): what each
record holds, and the diff against what closedloop last wrote."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, delete, update
from sqlmodel import Session

from adapters.hubspot.touch_records import _spec
from adapters.hubspot.touchpoint_schema import SCHEMA
from connector.config.loader import load_config
from connector.demo.emulators import enable_touchpoint_records, shipped_folder
from connector.kernel.records import TouchSchema
from connector.run.attribute import run_attribution
from connector.run.context import RunContext, build_context
from connector.run.match import run_match
from connector.run.touch_plan import TouchPlan, digest, record_key, rendered
from connector.run.touch_plan import plan as plan_only
from connector.store import models
from connector.store.database import table_of
from connector.store.writes import upsert

NOW = datetime(2026, 11, 20, tzinfo=UTC)
SCHEMA_SPECS = {p["name"]: _spec(p) for p in SCHEMA["properties"] if p["name"] != "touchpoint_key"}
TOUCHPOINTS = TouchSchema("touchpoints", SCHEMA_SPECS, ("contacts", "deals"))
# name: (person's ga id, month, day, utm source, utm medium)
TOUCHES = {
    "a1": ("g1", 10, 1, "google", "organic"),
    "a2": ("g1", 10, 5, "google", "cpc"),
    "a3": ("g1", 10, 9, "newsletter", "email"),
    "a4": ("g1", 10, 20, "(direct)", "(none)"),
    "a5": ("g1", 11, 5, "g2.com", "referral"),  # after D1 closed
    "b1": ("g2", 10, 11, "google", "cpc"),
    "b2": ("g2", 10, 14, "linkedin", "paid_social"),
    "x1": ("g9", 10, 2, "google", "cpc"),  # nobody's
}


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def make_context(tmp_path: Path, store_url: str, **block: Any) -> RunContext:
    tmp_path.mkdir(exist_ok=True)
    mapping = tmp_path / "hubspot.yaml"
    shutil.copy(shipped_folder("mappings") / "hubspot.yaml", mapping)
    enable_touchpoint_records(mapping)
    if block:
        data = yaml.safe_load(mapping.read_text())
        data["touchpoint_records"].update(block)
        mapping.write_text(yaml.safe_dump(data))
    config = {
        "store": {"url": store_url},
        "crm": {"kind": "hubspot", "settings": {"access_token": "x", "host": "http://127.0.0.1:9"}},
        "mappings": {"channels": str(shipped_folder("mappings") / "channels.yaml"),
                     "crm": str(mapping)},
        "sync": {"models": ["first_touch", "linear"], "report_model": "linear"},
    }  # fmt: skip
    path = tmp_path / "closedloop.yaml"
    path.write_text(yaml.safe_dump(config))
    return build_context(load_config(path))


@pytest.fixture
def ctx(tmp_path: Path, store_url: str, engine: Engine) -> Any:
    """C1 (created Oct 10) won D1 (1000, created Oct 15, closed Nov 1); C2 (created Oct 12) has
    the open D2 (400, created Oct 13); the touches of TOUCHES, matched and attributed."""
    with Session(engine) as session:
        for crm_id, day, ga in (("C1", 10, "g1"), ("C2", 12, "g2")):
            contact = models.Contact(
                crm_object="contacts", crm_id=crm_id, created_at=at(10, day), updated_at=at(10, day)
            )
            session.add(contact)
            session.flush()
            session.add(models.Identity(kind="ga_client_id", value=ga, contact_id=contact.id or 0))
        for name, (ga, month, day, source, medium) in TOUCHES.items():
            session.add(
                models.Touchpoint(
                    source="ga4", key=name, occurred_at=at(month, day),
                    identity_kind="ga_client_id", identity_value=ga, utm_source=source,
                    utm_medium=medium, utm_campaign=f"camp-{name}", landing_page=f"/{name}",
                )
            )  # fmt: skip
        session.add(
            models.Deal(crm_object="deals", crm_id="D1", amount=1000.0, amount_base=1000.0,
                        is_won=True, is_closed=True, created_at=at(10, 15),
                        updated_at=at(11, 1), closed_at=at(11, 1))
        )  # fmt: skip
        session.add(
            models.Deal(crm_object="deals", crm_id="D2", amount=400.0, amount_base=400.0,
                        created_at=at(10, 13), updated_at=at(10, 13))
        )  # fmt: skip
        session.add(models.DealContact(deal_crm_id="D1", contact_crm_id="C1"))
        session.add(models.DealContact(deal_crm_id="D2", contact_crm_id="C2"))
        session.commit()
    context = make_context(tmp_path, store_url)
    refresh(context)
    yield context
    context.close()


def plan(ctx: RunContext, schema: TouchSchema, now: datetime) -> TouchPlan:
    """The plan with its creates rendered, as a sync sends it."""
    result = plan_only(ctx, schema, now=now)
    creates = [c for part in rendered(ctx, result, 5) for c in part]
    result.changes = creates + [c for c in result.changes if c.action != "create"]
    return result


def refresh(ctx: RunContext) -> None:
    run_match(ctx)
    run_attribution(ctx)


def records(result: TouchPlan) -> dict[str, dict[str, Any]]:
    return {c.key: json.loads(c.new) for c in result.changes if c.new}


def person(name: str) -> str:
    return record_key("p", "ga4", name)


def deal(deal_id: str, name: str) -> str:
    return record_key("o", deal_id, "ga4", name)


def written(ctx: RunContext, result: TouchPlan) -> None:
    """As if every change of ``result`` had been sent and confirmed."""
    with Session(ctx.engine) as session:
        upsert(session, models.TouchRecord, [
            {"key": c.key, "crm_id": f"id-{c.key[-6:]}", "inputs_hash": c.inputs,
             "values_hash": digest(c.new),
             "written": c.new, "person_id": "", "run_id": 1}
            for c in result.changes if c.new
        ], ["key"])  # fmt: skip
        gone = [c.key for c in result.changes if c.new is None]
        tr = table_of(models.TouchRecord)
        session.execute(delete(tr).where(tr.c.key.in_(gone)))
        session.commit()


def test_one_record_per_touch_and_per_journey_touch(ctx: RunContext) -> None:
    result = plan(ctx, TOUCHPOINTS, now=NOW)
    assert {c.action for c in result.changes} == {"create"} and result.problems == []
    got = records(result)
    people = [person(n) for n in TOUCHES if n != "x1"]
    deals = [deal("D1", n) for n in ("a1", "a2", "a3", "a4")] + [deal("D2", "b1")]
    assert sorted(got) == sorted(people + deals)

    a3 = got[person("a3")]
    assert a3["links"] == {"contacts": "C1", "deals": None}
    assert a3["fields"] == {
        "occurred_at": "2026-10-09T12:00:00.000Z", "channel": "Email", "source": "newsletter",
        "medium": "email", "campaign": "camp-a3", "landing_page": "/a3",
        "position": "Lead Creation",
    }  # fmt: skip
    positions = {n: got[person(n)]["fields"]["position"] for n in TOUCHES if n != "x1"}
    assert positions == {"a1": "First", "a2": "Other", "a3": "Lead Creation", "a4": "Other",
                         "a5": "Last", "b1": "First;Lead Creation", "b2": "Last"}  # fmt: skip


def test_opportunity_records_carry_the_journey_position_and_credits(ctx: RunContext) -> None:
    got = records(plan(ctx, TOUCHPOINTS, now=NOW))
    d1 = {n: got[deal("D1", n)]["fields"] for n in ("a1", "a2", "a3", "a4")}
    assert {n: f["position"] for n, f in d1.items()} == {
        "a1": "First", "a2": "Other", "a3": "Lead Creation;Opportunity Creation", "a4": "Last",
    }  # fmt: skip
    assert got[deal("D1", "a2")]["links"] == {"contacts": "C1", "deals": "D1"}
    assert [f["credit_linear"] for f in d1.values()] == ["0.2500"] * 4
    assert [f["revenue_linear"] for f in d1.values()] == ["250.00"] * 4
    assert [f["credit_first_touch"] for f in d1.values()] == ["1.0000", "0.0000", "0.0000",
                                                              "0.0000"]  # fmt: skip
    assert d1["a1"]["revenue_first_touch"] == "1000.00"
    # carried models are computed even though the config's sync.models does not name them
    assert sum(float(f["credit_w_shaped"]) for f in d1.values()) == pytest.approx(1.0)
    assert [f["credit_last_touch"] for f in d1.values()][-1] == "1.0000"
    d2 = got[deal("D2", "b1")]["fields"]
    assert d2["position"] == "First;Lead Creation;Opportunity Creation;Last"
    assert (d2["credit_linear"], d2["revenue_linear"]) == ("1.0000", "400.00")


def test_nothing_changed_plans_nothing(ctx: RunContext) -> None:
    first = plan(ctx, TOUCHPOINTS, now=NOW)
    written(ctx, first)
    refresh(ctx)
    again = plan(ctx, TOUCHPOINTS, now=NOW)
    assert again.changes == [] and again.unchanged == len(first.changes) == 12


def test_a_changed_touch_updates_exactly_its_records(ctx: RunContext) -> None:
    written(ctx, plan(ctx, TOUCHPOINTS, now=NOW))
    tp = table_of(models.Touchpoint)
    with Session(ctx.engine) as session:
        session.execute(update(tp).where(tp.c.key == "a2").values(landing_page="/pricing"))
        session.commit()
    refresh(ctx)
    result = plan(ctx, TOUCHPOINTS, now=NOW)
    assert {(c.key, c.action) for c in result.changes} == {
        (person("a2"), "update"), (deal("D1", "a2"), "update"),
    }  # fmt: skip
    assert records(result)[person("a2")]["fields"]["landing_page"] == "/pricing"


def test_a_touch_that_no_longer_exists_is_deleted(ctx: RunContext) -> None:
    """A forgotten person's touch, an edited CSV row, a changed attribution: gone from the
    store, its records are deleted; the deal's other records get their new credits."""
    written(ctx, plan(ctx, TOUCHPOINTS, now=NOW))
    tp, credit = table_of(models.Touchpoint), table_of(models.Credit)
    with Session(ctx.engine) as session:
        touch_id = session.execute(tp.select().where(tp.c.key == "a2")).one().id
        session.execute(delete(credit).where(credit.c.touchpoint_id == touch_id))
        session.execute(delete(tp).where(tp.c.id == touch_id))
        session.commit()
    refresh(ctx)
    result = plan(ctx, TOUCHPOINTS, now=NOW)
    assert {c.key for c in result.changes if c.action == "delete"} == {
        person("a2"), deal("D1", "a2"),
    }  # fmt: skip
    updated = {c.key for c in result.changes if c.action == "update"}
    assert updated == {deal("D1", n) for n in ("a1", "a3", "a4")}  # 1/3 of the credit each
    assert records(result)[deal("D1", "a1")]["fields"]["credit_linear"] == "0.3333"


def test_lookback_limits_new_records_and_keeps_written_ones(
    tmp_path: Path, store_url: str, ctx: RunContext
) -> None:
    narrow = make_context(tmp_path / "narrow", store_url, lookback_days=40)  # since Oct 11
    try:
        first = plan(narrow, TOUCHPOINTS, now=NOW)
        created = {c.key for c in first.changes}
        assert person("a3") not in created and deal("D1", "a1") not in created
        assert person("b1") in created and person("a5") in created
        assert first.too_old == 6  # a1, a2, a3 and their D1 records
        written(ctx, plan(ctx, TOUCHPOINTS, now=NOW))  # written earlier, with a year of it
        again = plan(narrow, TOUCHPOINTS, now=NOW)
        assert again.changes == [] and again.unchanged == 12
    finally:
        narrow.close()


def test_a_record_that_cannot_be_rendered_is_reported_and_kept(
    tmp_path: Path, store_url: str, ctx: RunContext
) -> None:
    written(ctx, plan(ctx, TOUCHPOINTS, now=NOW))
    tp = table_of(models.Touchpoint)
    with Session(ctx.engine) as session:
        session.execute(update(tp).where(tp.c.key == "a4").values(landing_page="/" + "x" * 80))
        session.commit()
    fields = [{"field": "landing_page", "value": "landing_page", "max_length": 40,
               "on_overflow": "fail"}]  # fmt: skip
    strict = make_context(tmp_path / "strict", store_url, fields=fields)
    try:
        result = plan(strict, TOUCHPOINTS, now=NOW)
    finally:
        strict.close()
    assert len(result.problems) == 2  # a4's own record and its D1 record
    assert "landing_page: 81 characters, the field takes 40" in result.problems[0]
    assert not any(c.action == "delete" for c in result.changes)
    assert person("a4") not in {c.key for c in result.changes}


def test_a_mapping_edit_that_changes_no_value_rewrites_nothing(
    tmp_path: Path, store_url: str, ctx: RunContext
) -> None:
    written(ctx, plan(ctx, TOUCHPOINTS, now=NOW))
    shipped = yaml.safe_load((tmp_path / "hubspot.yaml").read_text())["touchpoint_records"]
    fields = [{**f, "label": f"Touch {f['field']}"} for f in shipped["fields"]]
    labelled = make_context(tmp_path / "labelled", store_url, fields=fields)
    try:
        result = plan_only(labelled, TOUCHPOINTS, now=NOW)
    finally:
        labelled.close()
    assert result.changes == [] and result.unchanged == 12
    assert len(result.refreshed) == 12  # re-rendered: same JSON, the new inputs remembered
