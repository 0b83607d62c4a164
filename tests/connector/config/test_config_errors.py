"""Bad config and mappings: a clear message with file, line and field; nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config.loader import load_config
from connector.config.mappings import load_channel_rules, load_crm_mapping
from connector.kernel.errors import ConfigError

GOOD = """\
store:
  url: sqlite:///x.db
crm:
  kind: hubspot
  settings:
    access_token: ${CL_TEST_TOKEN}
sources:
  - name: ga4
    kind: ga4
    settings:
      property_id: "1"
      access_token: ${CL_TEST_TOKEN}
"""


def write(tmp_path: Path, text: str, name: str = "closedloop.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_config_interpolates_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CL_TEST_TOKEN", "s3cr3t-value")
    loaded = load_config(write(tmp_path, GOOD))
    assert loaded.crm_settings.access_token.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(loaded.crm_settings)
    assert loaded.store_url() == f"sqlite:///{tmp_path.resolve()}/x.db"


def test_missing_secret_names_variable_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CL_TEST_TOKEN", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD))
    assert "closedloop.yaml:6: crm.settings.access_token" in str(info.value)
    assert "CL_TEST_TOKEN" in str(info.value)


def test_secret_from_secrets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CL_TEST_TOKEN", raising=False)
    secrets = write(tmp_path, "CL_TEST_TOKEN: from-file\n", "secrets.yaml")
    secrets.chmod(0o600)
    loaded = load_config(write(tmp_path, "secrets_file: secrets.yaml\n" + GOOD))
    assert loaded.crm_settings.access_token.get_secret_value() == "from-file"


def test_unknown_key_is_reported_with_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CL_TEST_TOKEN", "t")
    text = GOOD.replace("  url: sqlite:///x.db\n", "  url: sqlite:///x.db\n  ulr: oops\n")
    with pytest.raises(ConfigError, match=r"closedloop.yaml:3: store.ulr: unknown key"):
        load_config(write(tmp_path, text))


def test_adapter_setting_wrong_type_names_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CL_TEST_TOKEN", "t")
    text = GOOD.replace(
        '      property_id: "1"\n', '      property_id: "1"\n      page_size: lots\n'
    )
    with pytest.raises(ConfigError, match=r"closedloop.yaml:12: sources.0.settings.page_size"):
        load_config(write(tmp_path, text))


def test_malformed_yaml_gives_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"closedloop.yaml:3:\d+: malformed YAML"):
        load_config(write(tmp_path, "store:\n  url: x\n   bad: [\n"))


def test_unknown_crm_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CL_TEST_TOKEN", "t")
    with pytest.raises(ConfigError, match=r":4: crm.kind: unknown CRM 'pipedrive'"):
        load_config(write(tmp_path, GOOD.replace("kind: hubspot", "kind: pipedrive")))


def test_secret_value_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CL_TEST_TOKEN", "t")
    text = GOOD.replace(
        "access_token: ${CL_TEST_TOKEN}\nsources", "access_token: [not, a, string]\nsources"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert "not" not in str(info.value).split("access_token")[1]


def test_duplicate_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r":3: duplicate key 'store'"):
        load_config(write(tmp_path, "store: {}\ncrm: {kind: hubspot}\nstore: {}\n"))


def test_mapping_unknown_value_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "fields:\n  - field: x\n    value: first_touch.colour\n", "hubspot.yaml")
    with pytest.raises(ConfigError) as info:
        load_crm_mapping(path)
    assert "hubspot.yaml:2: fields.0" in str(info.value)
    assert "first_touch.colour" in str(info.value)


def test_mapping_bad_policy(tmp_path: Path) -> None:
    path = write(
        tmp_path, "fields:\n  - field: x\n    value: touch_count\n    policy: sometimes\n", "m.yaml"
    )
    with pytest.raises(ConfigError, match=r"m.yaml:4: fields.0.policy"):
        load_crm_mapping(path)


def test_channel_rule_with_bad_regex(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules:\n  - channel: X\n    all:\n      - {field: medium, regex: '(('}\n",
        "c.yaml",
    )
    with pytest.raises(ConfigError, match=r"c.yaml:4: rules.0.all.0.*invalid regex"):
        load_channel_rules(path)


def test_shipped_files_are_valid() -> None:
    root = Path(__file__).resolve().parents[3]
    assert len(load_channel_rules(root / "mappings/channels.yaml").rules) > 10
    assert load_crm_mapping(root / "mappings/hubspot.yaml").fields


def test_attribution_knobs_are_validated_with_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CL_TEST_TOKEN", "t")
    text = GOOD + "sync:\n  attribution:\n    markov_order: 9\n"
    with pytest.raises(ConfigError, match=r"closedloop.yaml:15: sync.attribution.markov_order"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("name", ["closedloop.yaml", "hubspot.yaml"])
def test_a_byte_that_is_not_utf8_names_file_line_and_column(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes("store:\n  url: sqlite:///x.db\n# café\n".encode() + b"# caf\xe9\n")
    load = load_config if name == "closedloop.yaml" else load_crm_mapping
    with pytest.raises(ConfigError, match=rf"{name}:4:6: byte 0xE9 is not UTF-8"):
        load(path)


def test_every_missing_secret_and_bad_setting_is_listed_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CL_TEST_TOKEN", raising=False)
    monkeypatch.delenv("CL_OTHER_TOKEN", raising=False)
    text = GOOD.replace(
        '      property_id: "1"\n      access_token: ${CL_TEST_TOKEN}\n',
        '      property_id: "one"\n      access_token: ${CL_OTHER_TOKEN}\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "closedloop.yaml:6: crm.settings.access_token: secret ${CL_TEST_TOKEN}" in message
    assert "closedloop.yaml:12: sources.0.settings.access_token: secret ${CL_OTHER_TOKEN}" in (
        message
    )
    assert "closedloop.yaml:11: sources.0.settings.property_id" in message


@pytest.mark.parametrize("rate", ["0", "-1.08", ".inf", ".nan"])
def test_a_currency_rate_must_be_a_positive_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rate: str
) -> None:
    monkeypatch.setenv("CL_TEST_TOKEN", "t")
    text = GOOD + f"currency:\n  base: USD\n  rates:\n    EUR: {rate}\n"
    with pytest.raises(ConfigError, match=r"closedloop.yaml:16: currency.rates.EUR"):
        load_config(write(tmp_path, text))
