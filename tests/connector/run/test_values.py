"""Rendering mapped values and comparing them with what the CRM holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from connector.config.mappings import FieldMapping
from connector.kernel.records import FieldSpec
from connector.run.values import (
    TRUNCATION_MARKER,
    _deal_values,
    _journey_values,
    canonical,
    ranked,
    render,
)
from connector.store import models

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


def test_collapse_repeats_is_a_mapping_option_of_the_path() -> None:
    values = {"channel_path": "Paid Search > Email > Email > Paid Search", "touch_count": "4"}
    collapsed = "Paid Search > Email > Paid Search"
    assert render(mapping(value="channel_path"), values, None) == collapsed  # the default
    every = mapping(value="channel_path", collapse_repeats=False)
    assert render(every, values, None) == values["channel_path"]
    template = mapping(template="{touch_count} touches: {channel_path}", collapse_repeats=True)
    assert render(template, values, None) == f"4 touches: {collapsed}"
    with pytest.raises(ValueError, match="collapse_repeats applies to channel_path only"):
        mapping(value="touch_count", collapse_repeats=False)


def test_ranked_breaks_ties_alphabetically_whatever_the_float_noise() -> None:
    shares = {"Paid Search": 0.1 + 0.2, "Email": 0.3, "Display": 0.2}
    assert [name for name, _ in ranked(shares)] == ["Email", "Paid Search", "Display"]


def test_top_channel_and_campaign_follow_one_tie_rule(engine: Engine) -> None:
    """Two touches with half the credit each: the alphabetically first channel and campaign
    win (the top campaign used to be the last), and a GA4 placeholder is no campaign."""
    moment = datetime(2026, 10, 1, tzinfo=UTC)
    with Session(engine) as session:
        person = models.Contact(crm_object="contacts", crm_id="c1", created_at=moment,
                                updated_at=moment)  # fmt: skip
        deal = models.Deal(crm_object="deals", crm_id="d1", amount=100.0, amount_base=100.0,
                           is_won=True, is_closed=True, created_at=moment,
                           updated_at=moment)  # fmt: skip
        session.add_all([person, deal])
        session.flush()
        touches = [
            ("zeta-push", "zeta-push", "Email"),
            ("alpha_launch", "alpha-launch", "Paid Search"),
            ("(direct)", "", "Direct"),
        ]
        rows = []
        for n, (campaign, key, channel) in enumerate(touches):
            touch = models.Touchpoint(
                source="ga4", key=f"t{n}", occurred_at=moment - timedelta(days=3 - n),
                identity_kind="ga_client_id", identity_value="1.2", utm_campaign=campaign,
                campaign_key=key, channel=channel, contact_id=person.id,
            )  # fmt: skip
            session.add(touch)
            session.flush()
            rows.append(touch)
        for touch, share in zip(rows, (0.4, 0.4, 0.2), strict=True):
            session.add(models.Credit(deal_id=deal.id, touchpoint_id=touch.id, model="linear",
                                      fraction=share, amount=share * 100))  # fmt: skip
        session.add(models.ContactJourney(contact_id=person.id, first_touch_id=rows[2].id,
                                          last_touch_id=rows[1].id, touch_count=3))  # fmt: skip
        session.commit()
        [(_, _, deal_values)] = _deal_values(session, "linear")
        [(_, _, person_values)] = _journey_values(session)
    assert deal_values["primary_channel"] == "Email"  # Email and Paid Search tie at 40 %
    assert deal_values["primary_campaign"] == "alpha_launch"  # the source's own spelling
    assert person_values["first_touch.campaign"] is None  # "(direct)" is no campaign
    assert person_values["last_touch.campaign"] == "alpha_launch"
