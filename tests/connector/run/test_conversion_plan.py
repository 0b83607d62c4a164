"""The conversions step's fixed points: where it runs, and ids that never change."""

from __future__ import annotations

from connector.config.conversions import ConversionMapping
from connector.config.settings import JobConfig
from connector.run.conversion_plan import dedup_id
from connector.run.sync import STEPS


def mapping(**kw: object) -> ConversionMapping:
    values: dict[str, object] = {"name": "x", "platform": "meta_ads", "event_name": "Lead"}
    return ConversionMapping.model_validate(values | kw)


def test_the_step_runs_after_revenue_and_before_writeback_and_jobs_may_name_it() -> None:
    assert STEPS.index("revenue") < STEPS.index("conversions") < STEPS.index("writeback")
    job = JobConfig(name="nightly", steps=["extract", "revenue", "conversions"], cron="0 3 * * *")
    assert job.steps[-1] == "conversions"


def test_dedup_ids_are_stable_per_milestone_and_subject_and_fit_every_platform() -> None:
    won = mapping(milestone="closed_won", value="amount", event_name="Purchase")
    lead = mapping(milestone="lead_created")
    stage = mapping(milestone="stage_reached", stages=["contractsent", "decision"])
    same_stages = mapping(milestone="stage_reached", stages=["decision", "contractsent"])
    assert dedup_id(won, "9001") == "cl-won-9001" == dedup_id(won.model_copy(), "9001")
    assert dedup_id(lead, "101") == "cl-lead-101"
    assert dedup_id(stage, "9001") == dedup_id(same_stages, "9001")
    assert dedup_id(stage, "9001").startswith("cl-stage-")
    assert dedup_id(stage, "9001") != dedup_id(mapping(milestone="stage_reached",
                                                       stages=["won"]), "9001")  # fmt: skip
    long = dedup_id(won, "0" * 80)
    assert len(long) <= 64 and long == dedup_id(won, "0" * 80)
