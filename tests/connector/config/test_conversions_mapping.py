"""conversions.yaml: each mistake is reported with file, line and field before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config.conversions import load_conversions, resolve_sources
from connector.config.settings import Config
from connector.demo.emulators import shipped_folder
from connector.kernel.errors import ConfigError

GOOD = """\
consent:
  field: ads_consent
  values: [granted]
conversions:
  - name: google-won
    platform: google_ads
    milestone: closed_won
    conversion_action: customers/1234567890/conversionActions/7003
    value: amount
  - name: meta-lead
    platform: meta_ads
    milestone: lead_created
    event_name: Lead
    value: 25
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conversions.yaml"
    path.write_text(text)
    return path


def config(**currency: object) -> Config:
    return Config.model_validate(
        {
            "crm": {"kind": "hubspot"},
            "sources": [
                {"name": "ads", "kind": "google_ads"},
                {"name": "meta", "kind": "meta_ads"},
            ],
            "currency": currency or {"base": "USD"},
        }
    )


def test_the_shipped_example_is_valid() -> None:
    loaded = load_conversions(shipped_folder("mappings") / "conversions.yaml")
    assert {c.platform for c in loaded.mapping.conversions} == {
        "google_ads", "meta_ads", "linkedin_ads"
    }  # fmt: skip
    assert loaded.mapping.consent is not None


def test_destinations_are_reduced_to_ids_and_sources_found(tmp_path: Path) -> None:
    loaded = load_conversions(write(tmp_path, GOOD))
    won, lead = loaded.mapping.conversions
    assert (won.destination, lead.destination) == ("7003", "Lead")
    assert won.per_deal and not lead.per_deal
    assert resolve_sources(loaded, config()) == ["ads", "meta"]
    assert loaded.mapping.consent_fields() == ["ads_consent"]


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("event_name: Lead", "conversion_rule: '1'"), 10, "needs `event_name`"),
        (("    value: amount", "    value: amount\n    event_name: Won"), 5, "not used by"),
        (("milestone: closed_won", "milestone: won"), 7, "conversions.0.milestone"),
        (("milestone: lead_created", "milestone: stage_reached"), 10, "give `stages`"),
        (("value: 25", "value: amount"), 10, "a lead has no amount"),
        (("value: 25", "value: -5"), 14, "cannot be negative"),
        (("event_name: Lead\n    value: 25", "event_name: Purchase"), 10, "needs a value"),
        (("/conversionActions/7003", "/conversionActions/abc"), 5, "numeric id"),
        (("name: meta-lead", "name: google-won"), 10, "'google-won' is used twice"),
        (("values: [granted]", "values: []"), 3, "consent.values"),
        (
            (
                "platform: meta_ads\n    milestone: lead_created\n    event_name: Lead",
                "platform: google_ads\n    milestone: closed_won\n    conversion_action: '7003'",
            ),
            12,
            "the same milestone to the same destination as 'google-won'",
        ),
    ],
)
def test_mistakes_name_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_conversions(path)
    assert f"{path}:{line}" in str(info.value)
    assert message in str(info.value)


def test_a_platform_without_its_source_or_a_currency_without_a_rate_is_refused(
    tmp_path: Path,
) -> None:
    loaded = load_conversions(write(tmp_path, "currency: CHF\n" + GOOD))
    no_meta = config().model_copy(update={"sources": config().sources[:1]})
    with pytest.raises(ConfigError) as info:
        resolve_sources(loaded, no_meta)
    text = str(info.value)
    assert "conversions.yaml:1: currency: currency CHF has no rate" in text
    assert "conversions.yaml:12: conversions.1.platform: no meta_ads source" in text
    assert resolve_sources(loaded, config(base="USD", rates={"CHF": 1.1})) == ["ads", "meta"]


def test_a_named_source_must_be_of_the_platform(tmp_path: Path) -> None:
    path = write(
        tmp_path, GOOD.replace("platform: google_ads", "platform: google_ads\n    source: meta")
    )
    with pytest.raises(
        ConfigError,
        match=r"conversions.yaml:7: conversions.0.source: .*no google_ads source named 'meta'",
    ):
        resolve_sources(load_conversions(path), config())
