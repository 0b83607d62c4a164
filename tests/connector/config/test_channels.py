"""The shipped channel rules follow GA4's default channel group."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config.channels import ChannelClassifier
from connector.config.mappings import ChannelRules, load_channel_rules

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def classify() -> ChannelClassifier:
    return ChannelClassifier(load_channel_rules(ROOT / "mappings/channels.yaml"))


@pytest.mark.parametrize(
    ("source", "medium", "campaign", "channel"),
    [
        ("(direct)", "(none)", "", "Direct"),
        ("(direct)", "(not set)", "", "Direct"),
        ("google", "cpc", "brand", "Paid Search"),
        ("Google", "CPC", "brand", "Paid Search"),
        ("bing", "organic", "", "Organic Search"),
        ("duckduckgo", "referral", "", "Organic Search"),
        ("linkedin", "paid_social", "", "Paid Social"),
        ("facebook", "cpc", "", "Paid Social"),
        ("linkedin", "social", "", "Organic Social"),
        ("youtube", "cpc", "", "Paid Video"),
        ("gdn", "display", "", "Display"),
        ("anything", "cpc", "spring-shopping", "Paid Shopping"),
        ("example", "ppc", "", "Paid Other"),
        ("newsletter", "email", "", "Email"),
        ("g2.com", "referral", "", "Referral"),
        ("affiliate-net", "affiliate", "", "Affiliates"),
        ("firebase", "notification", "", "Mobile Push Notifications"),
        ("someone", "xyz", "", "Unassigned"),
        ("google", "cpc", "cross-network-pmax", "Cross-network"),
    ],
)
def test_ga4_default_grouping(
    classify: ChannelClassifier, source: str, medium: str, campaign: str, channel: str
) -> None:
    assert classify.classify(source, medium, campaign) == channel


def test_first_matching_rule_wins_and_any_requires_one() -> None:
    rules = ChannelRules.model_validate(
        {
            "lists": {"partners": ["acme.com"]},
            "rules": [
                {
                    "channel": "Partners",
                    "all": [{"field": "medium", "equals": "referral"}],
                    "any": [{"field": "source", "in_list": "partners"}],
                },
                {"channel": "Referral", "all": [{"field": "medium", "equals": "referral"}]},
            ],
            "default": "Other",
        }
    )
    c = ChannelClassifier(rules)
    assert c.classify("acme.com", "referral") == "Partners"
    assert c.classify("other.com", "referral") == "Referral"
    assert c.classify("other.com", "cpc") == "Other"


def test_unknown_list_rejected() -> None:
    with pytest.raises(ValueError, match="unknown list 'nope'"):
        ChannelRules.model_validate(
            {"rules": [{"channel": "X", "all": [{"field": "source", "in_list": "nope"}]}]}
        )
