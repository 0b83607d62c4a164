"""``mappings/conversions.yaml``: which CRM milestones go back to which ad platform conversion.

Marketing ops edit it; ``closedloop schema`` writes its JSON Schema. Each entry names a
milestone (a person created, an opportunity created or reaching a stage, a deal won), the
platform and where the conversion goes there (a Google Ads conversion action, a Meta event
name, a LinkedIn conversion rule), the value sent, and which people may be sent (consent).
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.config.loader import validate
from connector.config.settings import Config
from connector.config.yamlfile import YamlDocument, load_yaml
from connector.kernel.errors import ConfigError

PLATFORM_FIELDS = {
    "google_ads": "conversion_action",
    "meta_ads": "event_name",
    "linkedin_ads": "conversion_rule",
}
_GOOGLE_ACTION = re.compile(r"^(?:customers/\d+/conversionActions/)?(\d+)$")
_LINKEDIN_RULE = re.compile(r"^(?:urn:lla:llaPartnerConversion:)?(\d+)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Milestone(StrEnum):
    LEAD_CREATED = "lead_created"  # a person record is created (per person)
    OPPORTUNITY_CREATED = "opportunity_created"  # a deal is created (per deal)
    STAGE_REACHED = "stage_reached"  # a deal is in one of `stages` (per deal)
    CLOSED_WON = "closed_won"  # a deal is won, with its amount (per deal)


class Consent(Strict):
    """A CRM person field that must hold one of ``values`` before anything about the person is
    sent (compared trimmed and case-insensitively)."""

    field: str = Field(description="The CRM field (HubSpot property, Salesforce field).")
    values: list[str] = Field(min_length=1, description="Values that mean 'may be sent'.")

    def allows(self, value: str | None) -> bool:
        wanted = {v.strip().lower() for v in self.values}
        return (value or "").strip().lower() in wanted


class ConversionMapping(Strict):
    """One CRM milestone sent to one platform conversion."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Unique; shown in reports.")
    platform: Literal["google_ads", "meta_ads", "linkedin_ads"]
    source: str | None = Field(
        None,
        description="The source in closedloop.yaml whose account is used (default: the "
        "one source of this platform).",
    )
    milestone: Milestone
    stages: list[str] = Field(
        default_factory=list, description="stage_reached: the CRM stages that count."
    )
    conversion_action: str | None = Field(
        None, description="Google Ads: the conversion action id (type 'Import from clicks')."
    )
    event_name: str | None = Field(
        None, description="Meta: the event name (Lead, Purchase, or a custom name)."
    )
    conversion_rule: str | None = Field(
        None, description="LinkedIn: the conversion rule id (method Conversions API)."
    )
    value: Literal["amount"] | float | None = Field(
        None, description="amount (the deal's, converted to `currency`), a fixed number, or none."
    )
    enhanced_conversions_for_leads: bool = Field(
        False, description="Google Ads: send the hashed email when the person has no click id."
    )
    consent: Consent | None = Field(
        None, description="Overrides the file's `consent` for this conversion."
    )

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected `amount` or a number")
        if isinstance(value, float | int) and value < 0:
            raise ValueError("a conversion value cannot be negative")
        return value

    @model_validator(mode="after")
    def _fits_platform(self) -> ConversionMapping:
        wanted = PLATFORM_FIELDS[self.platform]
        for name in PLATFORM_FIELDS.values():
            given = getattr(self, name) is not None
            if name == wanted and not given:
                raise ValueError(f"a {self.platform} conversion needs `{name}`")
            if name != wanted and given:
                raise ValueError(f"`{name}` is not used by {self.platform} (it takes `{wanted}`)")
        if self.platform == "google_ads" and not _GOOGLE_ACTION.match(self.conversion_action or ""):
            raise ValueError("conversion_action: expected the action's numeric id, e.g. '123456'")
        if self.platform == "linkedin_ads" and not _LINKEDIN_RULE.match(self.conversion_rule or ""):
            raise ValueError("conversion_rule: expected the rule's numeric id, e.g. '14488003'")
        if self.enhanced_conversions_for_leads and self.platform != "google_ads":
            raise ValueError("enhanced_conversions_for_leads applies to google_ads only")
        if (self.milestone == Milestone.STAGE_REACHED) != bool(self.stages):
            raise ValueError("give `stages` with milestone stage_reached, and only then")
        if self.milestone == Milestone.LEAD_CREATED and self.value == "amount":
            raise ValueError("a lead has no amount: give a fixed value, or none")
        if self.event_name == "Purchase" and self.value is None:
            raise ValueError("Meta's Purchase event needs a value: `amount` or a number")
        return self

    @property
    def destination(self) -> str:
        """The conversion action id, event name or rule id (resource names reduced to ids)."""
        if self.platform == "google_ads":
            match = _GOOGLE_ACTION.match(self.conversion_action or "")
            return match[1] if match else ""
        if self.platform == "linkedin_ads":
            match = _LINKEDIN_RULE.match(self.conversion_rule or "")
            return match[1] if match else ""
        return self.event_name or ""

    @property
    def per_deal(self) -> bool:
        return self.milestone != Milestone.LEAD_CREATED


class ConversionsMapping(Strict):
    consent: Consent | None = Field(
        None, description="Who may be sent: leave out to send everyone the CRM holds."
    )
    currency: str | None = Field(
        None, description="Currency of the values sent (default: the config's currency.base)."
    )
    phone_calling_code: str | None = Field(
        None,
        pattern=r"^\d{1,3}$",
        description="Country calling code for phone numbers written without + or 00, e.g. '1'.",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        description="Conversions per request (default and cap: each platform's limit: "
        "Google Ads 2,000, Meta 1,000, LinkedIn 5,000).",
    )
    conversions: list[ConversionMapping] = Field(default_factory=list)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z]{3}", value):
            raise ValueError("expected a 3-letter ISO currency code such as USD")
        return value.upper() if value else None

    def consent_for(self, conversion: ConversionMapping) -> Consent | None:
        return conversion.consent or self.consent

    def consent_fields(self) -> list[str]:
        """CRM person fields the extract step reads for consent."""
        found = [c.field for c in [self.consent, *(m.consent for m in self.conversions)] if c]
        return list(dict.fromkeys(found))


class LoadedConversions:
    """The validated mapping with its file, so later checks can name ``file:line``."""

    def __init__(self, doc: YamlDocument, mapping: ConversionsMapping) -> None:
        self.doc = doc
        self.mapping = mapping

    def where(self, index: int | None = None, field: str = "") -> str:
        loc: tuple[str | int, ...] = ("conversions", index) if index is not None else ()
        return self.doc.where((*loc, field) if field else loc)


def load_conversions(path: Path) -> LoadedConversions:
    doc = load_yaml(path)
    loaded = LoadedConversions(doc, validate(doc, ConversionsMapping, doc.data or {}))
    names: set[str] = set()
    same: dict[tuple[str, ...], str] = {}  # two entries would send one conversion twice
    for i, conversion in enumerate(loaded.mapping.conversions):
        if conversion.name in names:
            raise ConfigError(f"{loaded.where(i, 'name')}: {conversion.name!r} is used twice")
        names.add(conversion.name)
        key = (conversion.platform, conversion.destination, conversion.milestone,
               *sorted(conversion.stages))  # fmt: skip
        if key in same:
            raise ConfigError(
                f"{loaded.where(i, 'milestone')}: the same milestone to the same destination as "
                f"{same[key]!r}"
            )
        same[key] = conversion.name
    return loaded


def resolve_sources(loaded: LoadedConversions, config: Config) -> list[str]:
    """The source (closedloop.yaml) whose account each conversion goes through, and a check
    that the values' currency can be reached from the deals' amounts; ConfigError with
    ``file:line`` otherwise."""
    errors: list[str] = []
    mapping = loaded.mapping
    currency = mapping.currency or config.currency.base
    if currency != config.currency.base and currency not in config.currency.rates:
        errors.append(
            f"{loaded.doc.where(('currency',))}: currency {currency} has no rate in "
            f"closedloop.yaml currency.rates (amounts are converted from {config.currency.base})"
        )
    chosen: list[str] = []
    for i, m in enumerate(mapping.conversions):
        kinds = {s.name: s.kind for s in config.sources}
        if m.source is not None:
            if kinds.get(m.source) != m.platform:
                errors.append(
                    f"{loaded.where(i, 'source')}: closedloop.yaml has no "
                    f"{m.platform} source named {m.source!r}"
                )
            chosen.append(m.source)
            continue
        named = [name for name, kind in kinds.items() if kind == m.platform]
        if len(named) != 1:
            problem = (
                f"no {m.platform} source in closedloop.yaml: add one (its account and "
                "credentials send the conversions)"
                if not named
                else f"several {m.platform} sources ({', '.join(named)}): name one with `source`"
            )
            errors.append(f"{loaded.where(i, 'platform')}: {problem}")
        chosen.append(named[0] if named else "")
    if errors:
        raise ConfigError("\n".join(errors))
    return chosen
