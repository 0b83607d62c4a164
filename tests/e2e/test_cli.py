"""The commands a user types, through Typer's runner (same process, real emulators)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from connector.cli import app
from connector.demo.emulators import start_demo
from connector.demo.synthetic import generate

runner = CliRunner()


def test_demo_report_runs_and_json(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--contacts", "150", "--dir", str(workdir)])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    assert "ROI" in result.output and "ROAS" in result.output and "CAC" in result.output
    assert "Paid Search" in result.output and "Events" in result.output
    assert "Contacts as a sales rep now sees them" in result.output
    assert "The journey of contact" in result.output  # its touchpoint records, from the CRM
    assert "Opportunity Creation" in result.output and "w_shaped" in result.output
    config = str(workdir / "closedloop.yaml")

    report = runner.invoke(app, ["report", "-c", config, "--format", "json"])
    assert report.exit_code == 0, report.output
    body = json.loads(report.output)
    assert body["model"] == "linear"
    assert body["funnel"]["spend"] > 0 and body["unmatched_spend"] == 0
    assert sum(c["revenue_linear"] for c in body["channels"]) > 0
    assert {"roi", "roas", "cac", "spend"} <= set(body["channels"][0])

    campaigns = runner.invoke(app, ["report", "-c", config, "--by", "campaign", "--format", "csv"])
    assert campaigns.exit_code == 0, campaigns.output
    header, *lines = campaigns.output.strip().splitlines()
    assert header.startswith("campaign,channel,platforms,spend,")
    assert any(line.startswith("brand-search,Paid Search,google_ads,") for line in lines)

    window = runner.invoke(app, ["report", "-c", config, "--format", "json",
                                 "--start", "2001-01-01", "--end", "2001-12-31"])  # fmt: skip
    assert json.loads(window.output)["funnel"]["revenue"] == 0

    runs = runner.invoke(app, ["runs", "-c", config])
    assert runs.exit_code == 0 and "succeeded" in runs.output
    show = runner.invoke(app, ["runs", "-c", config, "show", "1"])
    assert show.exit_code == 0 and "field writes: ok" in show.output


def test_doctor_checks_reachability_and_fields(tmp_path: Path) -> None:
    systems = start_demo(tmp_path / "d", "hubspot", generate(contacts=20, visits=200, deals=5))
    try:
        config = str(systems.config_path)
        ok = runner.invoke(app, ["doctor", "-c", config])
        assert ok.exit_code == 0, ok.output
        assert "will be created on first sync" in ok.output
        systems.emulators["hubspot"].access_token = "rotated"
        bad = runner.invoke(app, ["doctor", "-c", config])
        assert bad.exit_code == 1
        assert "pat-na1-demo" not in bad.output
    finally:
        systems.stop()


def test_bad_mapping_is_reported_before_any_request(tmp_path: Path) -> None:
    systems = start_demo(tmp_path / "d", "hubspot", generate(contacts=20, visits=200, deals=5))
    try:
        mapping = tmp_path / "d" / "mappings" / "hubspot.yaml"
        mapping.write_text(mapping.read_text().replace("value: touch_count", "value: touch_total"))
        result = runner.invoke(app, ["sync", "-c", str(systems.config_path)])
        assert result.exit_code == 2
        assert "hubspot.yaml:" in result.output and "touch_total" in result.output
        assert all(len(e.log) == 0 for e in systems.emulators.values())
    finally:
        systems.stop()


def test_paths_command_prints_the_documented_csv(tmp_path: Path) -> None:
    table = tmp_path / "paths.csv"
    table.write_text(
        "path,total_conversions,total_conversion_value,total_null\nA > B,2,200,1\nB,1,50,3\n"
    )
    result = runner.invoke(app, ["paths", str(table), "--models", "first_touch,linear"])
    assert result.exit_code == 0, result.output
    rows = result.output.strip().splitlines()
    assert rows[0] == "model,channel,conversions,value"
    parsed = {tuple(r.split(",")[:2]): tuple(map(float, r.split(",")[2:])) for r in rows[1:]}
    assert parsed[("first_touch", "A")] == (2.0, 200.0)
    assert parsed[("first_touch", "B")] == (1.0, 50.0)
    assert parsed[("linear", "A")] == (1.0, 100.0)
    assert parsed[("linear", "B")] == (2.0, 150.0)
    bad = runner.invoke(app, ["paths", str(tmp_path / "missing.csv")])
    assert bad.exit_code == 2 and "missing.csv" in bad.output


def test_doctor_lists_every_problem_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing secret, a missing key file, an identity and a UTM field the CRM lacks and a
    source that refuses its token: one doctor run names them all, and writes nothing."""
    systems = start_demo(tmp_path / "d", "hubspot", generate(contacts=20, visits=200, deals=5))
    try:
        path = systems.config_path
        config = yaml.safe_load(path.read_text())
        by_name = {s["name"]: s for s in config["sources"]}
        by_name["meta_ads"]["settings"]["access_token"] = "${CL_DOCTOR_NOT_SET}"
        ga4 = by_name["ga4"]["settings"]
        del ga4["access_token"]
        ga4["credentials_file"] = "no-such-key.json"
        path.write_text(yaml.safe_dump(config))
        mapping = tmp_path / "d" / "mappings" / "hubspot.yaml"
        mapping.write_text(
            mapping.read_text()
            .replace("ga_client_id: ga_client_id", "ga_client_id: ga_clientid")
            .replace("source: utm_source", "source: utm_src")
        )
        systems.emulators["linkedin_ads"].access_token = "rotated"
        monkeypatch.delenv("CL_DOCTOR_NOT_SET", raising=False)
        result = runner.invoke(app, ["doctor", "-c", str(path)])
        assert result.exit_code == 2, result.output
        for expected in ("CL_DOCTOR_NOT_SET", "no-such-key.json", "'ga_clientid'", "'utm_src'",
                         "source linkedin_ads", "source meta_ads: not checked"):  # fmt: skip
            assert expected in result.output, expected
        assert "hubspot.yaml:" in result.output
        assert not (tmp_path / "d" / "closedloop.db").exists()
        assert systems.emulators["hubspot"].requests("POST", "/crm/v3/properties") == []
    finally:
        systems.stop()
