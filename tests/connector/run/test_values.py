"""Rendering mapped values and comparing them with what the CRM holds."""

from __future__ import annotations

import pytest

from connector.config.mappings import FieldMapping
from connector.kernel.records import FieldSpec
from connector.run.values import TRUNCATION_MARKER, canonical, render

VALUES: dict[str, str | None] = {
    "first_touch.channel": "Paid Search",
    "first_touch.campaign": "brand",
    "lead_creation_touch.source": "google",
    "lead_creation_touch.medium": "cpc",
    "last_touch.channel": None,
    "channel_path": " > ".join(["Organic Search", "Paid Search", "Email"] * 30),
}


def mapping(**kwargs: object) -> FieldMapping:
    return FieldMapping.model_validate({"field": "f", **kwargs})


def test_value_and_value_map() -> None:
    m = mapping(value="first_touch.channel", value_map={"Paid Search": "PAID_SEARCH"})
    assert render(m, VALUES, None) == "PAID_SEARCH"


def test_template_is_plain_substitution() -> None:
    m = mapping(template="{lead_creation_touch.source} / {lead_creation_touch.medium}")
    assert render(m, VALUES, None) == "google / cpc"


def test_template_cannot_reach_python_attributes() -> None:
    with pytest.raises(ValueError, match="unknown value"):
        mapping(template="{first_touch.channel.__class__}")


def test_missing_value_writes_nothing() -> None:
    assert render(mapping(value="last_touch.channel"), VALUES, None) is None


def test_long_path_truncated_with_marker_to_field_length() -> None:
    text = render(mapping(value="channel_path"), VALUES, FieldSpec("f", "string", length=255))
    assert text is not None and len(text) == 255 and text.endswith(TRUNCATION_MARKER)


def test_long_path_fails_when_mapping_says_so() -> None:
    m = mapping(value="channel_path", max_length=40, on_overflow="fail")
    with pytest.raises(ValueError, match="takes 40"):
        render(m, VALUES, None)


def test_restricted_picklist_rejects_unmapped_value() -> None:
    spec = FieldSpec("LeadSource", "enumeration", picklist=("Web", "Paid Search"), restricted=True)
    assert render(mapping(value="first_touch.channel"), VALUES, spec) == "Paid Search"
    with pytest.raises(ValueError, match="not an allowed value"):
        render(mapping(value="first_touch.campaign"), VALUES, spec)


@pytest.mark.parametrize(
    ("a", "b", "kind"),
    [
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000Z", "datetime"),
        ("2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00.000+0000", "datetime"),
        ("3", "3.0", "number"),
        ("", None, "string"),
    ],
)
def test_canonical_equal(a: str, b: str | None, kind: str) -> None:
    spec = FieldSpec("f", kind)
    assert canonical(a, spec) == canonical(b, spec)


def test_canonical_different() -> None:
    assert canonical("Email", None) != canonical("email", None)
    assert canonical("3", FieldSpec("f", "number")) != canonical("4", FieldSpec("f", "number"))
