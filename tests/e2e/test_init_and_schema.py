"""A new user's first commands: init writes commented examples, schema lets editors validate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from connector.cli import app
from connector.demo.emulators import shipped_folder

runner = CliRunner()


def test_init_writes_examples_and_doctor_names_missing_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "setup")])
    assert result.exit_code == 0, result.output
    config = tmp_path / "setup" / "config" / "closedloop.yaml"
    assert config.exists() and (tmp_path / "setup" / "mappings" / "channels.yaml").exists()
    conversions = tmp_path / "setup" / "mappings" / "conversions.yaml"
    assert "# Which CRM milestones" in conversions.read_text()
    assert "#" in config.read_text()  # commented for the person who edits it
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    doctor = runner.invoke(app, ["doctor", "-c", str(config)])
    assert doctor.exit_code == 2
    assert "HUBSPOT_ACCESS_TOKEN" in doctor.output and "closedloop.yaml:" in doctor.output
    again = runner.invoke(app, ["init", str(tmp_path / "setup")])
    assert "kept" in again.output  # never overwrites what someone edited


def test_json_schemas_validate_the_shipped_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", str(tmp_path)])
    assert result.exit_code == 0, result.output
    schemas = {p.name.split(".")[0]: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(schemas) == {"channels", "crm_mapping", "campaigns", "config", "conversions"}
    folder = shipped_folder("mappings")
    cases = {"channels": ["channels.yaml"], "crm_mapping": ["hubspot.yaml", "salesforce.yaml"],
             "campaigns": ["campaigns.yaml"], "conversions": ["conversions.yaml"]}  # fmt: skip
    for schema, files in cases.items():
        for name in files:
            jsonschema.validate(yaml.safe_load((folder / name).read_text()), schemas[schema])
    config = yaml.safe_load((shipped_folder("config") / "closedloop.yaml").read_text())
    jsonschema.validate(config, schemas["config"])
    broken = {"fields": [{"field": "x", "value": "touch_count", "policy": "sometimes"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schemas["crm_mapping"])
    wrong_milestone = {"conversions": [{"name": "x", "platform": "meta_ads", "milestone": "paid",
                                        "event_name": "Lead"}]}  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong_milestone, schemas["conversions"])


def test_init_writes_every_file_its_example_config_names(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 0, result.output
    config = tmp_path / "config" / "closedloop.yaml"
    named = re.findall(
        r"(?:touchpoints_file|spend_file|channels|crm|campaigns):\s*(\S+\.(?:csv|yaml))",
        config.read_text(),
    )
    assert len(named) >= 5  # the mappings and both sample CSVs (commented out or not)
    for relative in named:
        assert (config.parent / relative).is_file(), relative


def test_config_schema_types_each_adapters_settings_by_kind(tmp_path: Path) -> None:
    assert runner.invoke(app, ["schema", str(tmp_path)]).exit_code == 0
    schema = json.loads((tmp_path / "config.schema.json").read_text())
    good = {
        "crm": {"kind": "salesforce", "settings": {"session_id": "x", "instance_url": "http://h",
                                                   "allow_http": True}},
        "sources": [{"name": "ga4", "kind": "ga4", "settings": {"property_id": "1",
                                                               "access_token": "${T}"}}],
    }  # fmt: skip
    jsonschema.validate(good, schema)
    misspelled = [
        {"crm": {"kind": "hubspot", "settings": {"acess_token": "x"}}},
        {"crm": {"kind": "hubspot", "settings": {"access_token": "x", "allow_http": True}}},
        {"crm": {"kind": "hubspot", "settings": {"access_token": "x", "page_size": "many"}}},
        {**good, "sources": [{"name": "ga4", "kind": "ga4", "settings": {"property_idd": "1"}}]},
        {**good, "sources": [{"name": "x", "kind": "ga5", "settings": {}}]},
    ]
    for config in misspelled:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(config, schema)
