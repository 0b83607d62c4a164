"""The `touchpoint_records:` block of the CRM mappings: validated with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config.mappings import json_schemas, load_crm_mapping
from connector.kernel.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
BLOCK = """\
fields:
  - field: x
    value: touch_count
touchpoint_records:
  enabled: true
  lookback_days: 90
  fields:
    - field: Channel__c
      value: channel
    - field: Where__c
      template: "{source} / {medium} on {landing_page}"
    - field: Old__c
      value: campaign
      policy: never
  models:
    - model: linear
      credit_field: Credit_Linear__c
      revenue_field: Revenue_Linear__c
    - model: markov
      credit_field: Credit_Markov__c
"""


def mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crm.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_shipped_mappings_carry_the_block_switched_off(crm: str) -> None:
    block = load_crm_mapping(ROOT / "mappings" / f"{crm}.yaml").touchpoint_records
    assert block.enabled is False and block.lookback_days == 365
    values = {f.value for f in block.fields}
    assert values == {"occurred_at", "channel", "source", "medium", "campaign", "landing_page",
                      "position"}  # fmt: skip
    assert [m.model for m in block.models] == ["first_touch", "last_touch", "linear", "w_shaped"]


def test_a_valid_block(tmp_path: Path) -> None:
    block = load_crm_mapping(mapping(tmp_path, BLOCK)).touchpoint_records
    assert block.enabled and block.lookback_days == 90
    assert [f.field for f in block.active_fields()] == ["Channel__c", "Where__c"]
    assert block.models[1].revenue_field is None


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("      value: channel\n", "      value: chanel\n", r"crm.yaml:8: touchpoint_records"
         r".fields.0: .*unknown value 'chanel'; expected one of: occurred_at, channel"),
        ("{source} / {medium}", "{source} / {first_touch.medium}",
         r"crm.yaml:10: touchpoint_records.fields.1: .*'first_touch.medium'"),
        ("      policy: never\n", "      policy: fill_if_empty\n",
         r"crm.yaml:12: touchpoint_records.fields.2: .*closedloop's own: policy is overwrite"),
        ("    - model: markov\n", "    - model: markov2\n",
         r"crm.yaml:19: touchpoint_records.models.1.model: .*'first_touch'"),
        ("  lookback_days: 90\n", "  lookback_days: 0\n",
         r"crm.yaml:6: touchpoint_records.lookback_days: .*greater than or equal to 1"),
        ("      credit_field: Credit_Markov__c\n", "      credit_field: Channel__c\n",
         r"crm.yaml:4: touchpoint_records: .*record field mapped twice: Channel__c"),
        ("    - model: markov\n", "    - model: linear\n",
         r"crm.yaml:4: touchpoint_records: .*model listed twice: linear"),
        ("  enabled: true\n", "  enabled: true\n  enable: true\n",
         r"crm.yaml:6: touchpoint_records.enable: unknown key"),
    ],
)  # fmt: skip
def test_mistakes_name_file_line_and_field(tmp_path: Path, old: str, new: str, where: str) -> None:
    assert old in BLOCK
    with pytest.raises(ConfigError, match=where):
        load_crm_mapping(mapping(tmp_path, BLOCK.replace(old, new)))


def test_json_schema_describes_the_block() -> None:
    schema = json_schemas()["crm_mapping"]
    block = schema["$defs"]["TouchpointRecords"]["properties"]
    assert set(block) == {"enabled", "lookback_days", "fields", "models"}
    models = schema["$defs"]["ModelFields"]["properties"]["model"]
    assert "shapley" in models["enum"]
    assert "position" in schema["$defs"]["TouchFieldMapping"]["properties"]["value"]["description"]
