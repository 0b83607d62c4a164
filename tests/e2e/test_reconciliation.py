"""Numbers a finance team can reconcile, end to end through the real clients and the emulators,
on both CRMs and both stores: every won dollar is in the report (attributed or not), campaigns
read as their source spells them, and placeholders never reach a CRM campaign field."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.demo.synthetic import Company, generate
from tests.e2e.crm_loop import Loop, start_loop

runner = CliRunner()
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# The demo's config: base USD, EUR 1.08, GBP 1.27 (no CHF: such deals are reported apart).
CONFIG_RATES = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}


@pytest.fixture(scope="module")
def company() -> Company:
    return generate(seed=23, contacts=80, visits=800, deals=30)


@pytest.fixture(params=["hubspot", "salesforce"])
def loop(
    request: pytest.FixtureRequest, tmp_path: Path, company: Company, store_url: str
) -> Iterator[Loop]:
    running = start_loop(tmp_path / "demo", request.param, company)
    running.use_store(store_url)
    yield running
    running.systems.stop()


def cents(value: float) -> int:
    return round(value * 100)


def to_base(loop: Loop, amount: float, currency: str) -> float | None:
    """The CRM's amount in USD, as the CRM itself converts it (Salesforce: the org's rates)."""
    if loop.probe.crm == "salesforce":
        rates = loop.crm.records["DatedConversionRate"].values()
        rate = next(r["ConversionRate"] for r in rates if r["IsoCode"] == currency)
        return amount / rate
    return amount * CONFIG_RATES[currency] if currency in CONFIG_RATES else None


def crm_totals(loop: Loop) -> tuple[float, float, int]:
    """Straight from the CRM emulator: (closed-won total, open pipeline total, won deals)."""
    won, pipeline, count = [], [], 0
    for deal in loop.probe.deal_records().values():
        if loop.probe.crm == "salesforce":
            amount, currency = deal["Amount"], deal["CurrencyIsoCode"]
            is_won, is_closed = deal["IsWon"], deal["IsClosed"]
        else:
            amount, currency = float(deal["amount"]), deal["deal_currency_code"]
            is_won, is_closed = deal["hs_is_closed_won"] == "true", deal["hs_is_closed"] == "true"
        base = to_base(loop, float(amount), currency)
        count += is_won
        if base is not None and is_won:
            won.append(base)
        elif base is not None and not is_closed:
            pipeline.append(base)
    return math.fsum(won), math.fsum(pipeline), count


def report(loop: Loop, *args: str) -> str:
    result = runner.invoke(app, ["report", "-c", str(loop.systems.config_path), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_won_dollar_is_in_every_view(loop: Loop, tmp_path: Path) -> None:
    probe = loop.probe
    # A buyer nothing tracked: a won deal and an open deal whose journeys have no touch.
    silent = probe.add_person("silent.buyer@example.com", NOW - timedelta(days=40), None)
    probe.add_deal(
        "Silent win", 12_345.67, silent, NOW - timedelta(days=30), NOW - timedelta(days=5)
    )
    probe.add_deal("Silent open", 5_000.01, silent, NOW - timedelta(days=10), None)
    # A buyer who came direct, then through a campaign spelled with an underscore.
    spring = probe.add_person("spring.buyer@example.com", NOW - timedelta(days=40), "777.888")
    loop.ga4.add_session("777.888", NOW - timedelta(days=42), "(direct)", "(none)", "(direct)")
    loop.ga4.add_session("777.888", NOW - timedelta(days=35), "google", "cpc", "Spring_Launch")
    probe.add_deal(
        "Spring win", 2_000.00, spring, NOW - timedelta(days=20), NOW - timedelta(days=2)
    )
    _, run = loop.sync()
    assert run.status == "succeeded", run.error
    won_total, pipeline_total, won_deals = crm_totals(loop)

    for by in ("channel", "campaign"):
        body = json.loads(report(loop, "--format", "json", "--by", by))
        rows, totals = body[f"{by}s"], body["totals"]
        assert "channels" not in body or by == "channel"  # --by is honoured
        assert cents(totals["won_total"]) == cents(won_total)
        assert cents(totals["pipeline_total"]) == cents(pipeline_total)
        assert totals["won_deals"] == won_deals
        for model in body["models"]:
            attributed = sum(cents(r[f"revenue_{model}"]) for r in rows)
            assert cents(totals["attributed"][model]) == attributed
            assert attributed + cents(totals["unattributed"][model]) == cents(won_total), model
            assert totals["unattributed"][model] >= 12_345.67
        pipeline = sum(cents(r["pipeline"]) for r in rows)
        unattributed = cents(totals["pipeline_unattributed"][body["model"]])
        assert pipeline + unattributed == cents(pipeline_total) and unattributed >= 500_001
        for stage, amounts in body["pipeline_by_stage"].items():
            assert sum(map(cents, amounts.values())) == cents(body["pipeline_stage_totals"][stage])
        assert not any(stage.islower() for stage in body["pipeline_stage_totals"])  # labels

        # CSV: the same rows, then the unattributed line and the CRM's total
        lines = list(csv.DictReader(io.StringIO(report(loop, "--format", "csv", "--by", by))))
        gap, total = lines[-2], lines[-1]
        assert (gap[by], total[by]) == ("Unattributed (no touch)", "CRM total")
        revenue = f"revenue_{body['model']}"
        assert sum(cents(float(r[revenue])) for r in lines[:-1]) == cents(float(total[revenue]))
        assert cents(float(total[revenue])) == cents(won_total)

        # every format can be written to a file; the view and its two lines are in each
        for fmt in ("table", "csv", "json", "html"):
            out = tmp_path / f"report-{by}.{fmt}"
            report(loop, "--format", fmt, "--by", by, "-o", str(out))
            text = out.read_text(encoding="utf-8")
            if fmt == "json":
                assert json.loads(text)["totals"] == totals
                continue
            assert "Unattributed (no touch)" in text and "CRM total" in text
            if fmt != "csv":
                assert f"{totals['won_total']:,.2f}" in text
            if fmt == "html":
                assert f'data-table="{by}s"' in text and f"ROI by {by}" in text

    body = json.loads(report(loop, "--format", "json", "--by", "campaign"))
    campaigns = {r["campaign"]: r for r in body["campaigns"]}
    # direct and organic revenue has a row; the campaign reads as its source spells it
    assert campaigns["No campaign"]["revenue_linear"] > 0
    assert "Spring_Launch" in campaigns and "spring-launch" not in campaigns
    assert not any(name.startswith("(") for name in campaigns)

    # GA4's placeholders never reach a CRM campaign field; the source's own name does
    people = probe.records()
    values = [p.get(f) for p in people.values() for f in probe.campaign_fields]
    values += [d.get(probe.deal_campaign) for d in probe.deal_records().values()]
    assert not [v for v in values if v and v.startswith("(")]
    assert people[spring][probe.campaign_fields[1]] == "Spring_Launch"


def test_period_is_the_datas_own_range_and_headers_are_whole(loop: Loop) -> None:
    _, run = loop.sync()
    assert run.status == "succeeded", run.error
    body = json.loads(report(loop, "--format", "json"))
    first, last = body["period"]["first"], body["period"]["last"]
    assert first and last and first < last
    table = report(loop)  # CliRunner's output is a pipe, not a terminal
    assert f"{first} to {last}" in table and "… to …" not in table
    header = next(line for line in table.splitlines() if "channel" in line and "spend" in line)
    for label in ("won (credit)", "opps (credit)", "rev linear (credit)", "pipeline (credit)"):
        assert label in header
    assert "…" not in header
    assert len(header) > 160  # the table's natural width, not cut at 160 columns
