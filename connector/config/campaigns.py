"""Campaign joins: one name per campaign across ad platforms, GA4 UTMs and the CRM.

Without a rule, names join by their slug (lowercase; spaces, underscores and punctuation as
``-``), so ``Brand Search`` on Google Ads meets ``brand-search`` in a UTM. Rules in
``mappings/campaigns.yaml`` join what the slug cannot: exact names (case-insensitive) or a regex.
The slug only joins: reports show the source's own spelling, or a rule's ``name``. GA4's
placeholders (``(not set)``, ``(direct)``...) get no key: they are no campaign.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.config.loader import validate
from connector.config.yamlfile import load_yaml

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def slug(name: str) -> str:
    return _NOT_ALNUM.sub("-", name.strip().lower()).strip("-")


class CampaignRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The campaign name reports use.")
    match: list[str] = Field(default_factory=list, description="Names (any case) that mean it.")
    pattern: str | None = Field(None, description="A regex (any case) for names that mean it.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return value


class CampaignRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    campaigns: list[CampaignRule] = Field(default_factory=list)


class CampaignJoin:
    """Maps any spelling of a campaign to its join key ('' for no campaign)."""

    def __init__(self, rules: CampaignRules | None = None) -> None:
        self._exact: dict[str, str] = {}
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        for rule in (rules or CampaignRules()).campaigns:
            for name in rule.match:
                self._exact.setdefault(name.strip().lower(), rule.name)
            if rule.pattern:
                self._patterns.append((re.compile(rule.pattern, re.IGNORECASE), rule.name))
        self.key = lru_cache(maxsize=65536)(self._key)

    def _key(self, name: str) -> str:
        text = name.strip()
        if not text or (text.startswith("(") and text.endswith(")")):  # GA4's "(not set)", ...
            return ""
        exact = self._exact.get(name.strip().lower())
        if exact:
            return exact
        for pattern, canonical in self._patterns:
            if pattern.search(name):
                return canonical
        return slug(name)


def load_campaign_rules(path: Path | None) -> CampaignRules:
    if path is None:
        return CampaignRules()
    doc = load_yaml(path)
    return validate(doc, CampaignRules, doc.data or {})  # type: ignore[no-any-return]
