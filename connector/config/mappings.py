"""Marketing ops' mapping files: channel rules and CRM field mappings (pydantic models).

``closedloop schema`` writes the JSON Schema of these models so editors validate as people type.
Values are chosen from a fixed vocabulary (:data:`VALUES`) or templates over it: data, never code.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.config.loader import validate
from connector.config.settings import ModelName
from connector.config.yamlfile import load_yaml


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- channels.yaml -------------------------------------------------------------------------
TouchField = Literal["source", "medium", "campaign", "landing_page"]


class Condition(Strict):
    """One test on a touchpoint field; exactly one operator. Matching ignores case."""

    field: TouchField
    equals: str | None = None
    in_: list[str] | None = Field(None, alias="in")
    in_list: str | None = Field(None, description="Name of a list under `lists:`.")
    regex: str | None = None
    contains: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        ops = [self.equals, self.in_, self.in_list, self.regex, self.contains]
        if sum(op is not None for op in ops) != 1:
            raise ValueError("give exactly one of equals, in, in_list, regex, contains")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return self


class ChannelRule(Strict):
    """``channel`` applies when all of ``all`` and at least one of ``any`` (if given) hold."""

    channel: str
    all: list[Condition] = Field(default_factory=list)
    any: list[Condition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_conditions(self) -> ChannelRule:
        if not self.all and not self.any:
            raise ValueError("a rule needs `all:` or `any:` conditions")
        return self


class ChannelRules(Strict):
    lists: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[ChannelRule]
    default: str = "Unassigned"
    direct: str = Field("Direct", description="The channel that last-non-direct skips.")

    @model_validator(mode="after")
    def _lists_exist(self) -> ChannelRules:
        for rule in self.rules:
            for cond in [*rule.all, *rule.any]:
                if cond.in_list is not None and cond.in_list not in self.lists:
                    raise ValueError(f"rule {rule.channel!r} uses unknown list {cond.in_list!r}")
        return self


# -- <crm>.yaml ----------------------------------------------------------------------------
class Policy(StrEnum):
    OVERWRITE = "overwrite"
    FILL_IF_EMPTY = "fill_if_empty"
    NEVER = "never"


TOUCHES = ("first_touch", "lead_creation_touch", "last_touch")
TOUCH_ATTRS = ("channel", "source", "medium", "campaign", "landing_page", "occurred_at")
VALUES: tuple[str, ...] = (
    *(f"{t}.{a}" for t in TOUCHES for a in TOUCH_ATTRS),
    "touch_count",
    "channel_path",
    "channel_count",
)
# What a deal / opportunity can receive, from the attribution model's credits.
DEAL_VALUES: tuple[str, ...] = (
    "primary_channel", "primary_campaign", "first_touch_channel", "last_touch_channel",
    "touch_count", "channel_count", "channel_mix",
)  # fmt: skip


class FieldMapping(Strict):
    """One CRM field and the computed value it receives."""

    VOCABULARY: ClassVar[tuple[str, ...]] = VALUES

    field: str
    value: str | None = Field(None, description=f"One of: {', '.join(VALUES)}")
    template: str | None = Field(None, description="Text with {value} placeholders.")
    policy: Policy = Policy.OVERWRITE
    label: str = ""
    type: Literal["string", "number", "datetime"] = "string"
    value_map: dict[str, str] = Field(
        default_factory=dict, description="Translate values, e.g. channel -> picklist."
    )
    max_length: int | None = None
    on_overflow: Literal["truncate", "fail"] = "truncate"
    collapse_repeats: bool = Field(
        True,
        description="channel_path only: write a run of touches in one channel once "
        "('Paid Search > Email > Email' -> 'Paid Search > Email'); false lists every touch.",
    )

    @model_validator(mode="after")
    def _value_or_template(self) -> FieldMapping:
        if (self.value is None) == (self.template is None):
            raise ValueError("give exactly one of `value` or `template`")
        for name in self.names():
            if name not in self.VOCABULARY:
                known = ", ".join(self.VOCABULARY)
                raise ValueError(f"unknown value {name!r}; expected one of: {known}")
        if "collapse_repeats" in self.model_fields_set and "channel_path" not in self.names():
            raise ValueError("collapse_repeats applies to channel_path only")
        return self

    def names(self) -> list[str]:
        if self.value is not None:
            return [self.value]
        return PLACEHOLDER.findall(self.template or "")

    def fill(self, values: dict[str, str]) -> str:
        """The template with each ``{name}`` replaced: plain substitution, no expressions."""
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template or "")


PLACEHOLDER = re.compile(r"\{([a-z_.]+)\}")


class DealFieldMapping(FieldMapping):
    """One deal / opportunity field and the attribution summary it receives."""

    VOCABULARY: ClassVar[tuple[str, ...]] = DEAL_VALUES
    value: str | None = Field(None, description=f"One of: {', '.join(DEAL_VALUES)}")


# What a touchpoint record can hold, per touch. ``position``: its roles in the journey,
# ';'-separated (First, Lead Creation, Opportunity Creation, Last), or Other.
TOUCH_RECORD_VALUES: tuple[str, ...] = (
    "occurred_at", "channel", "source", "medium", "campaign", "landing_page", "position",
)  # fmt: skip


class TouchFieldMapping(FieldMapping):
    """One field of the touchpoint record and the touch value it holds."""

    VOCABULARY: ClassVar[tuple[str, ...]] = TOUCH_RECORD_VALUES
    value: str | None = Field(None, description=f"One of: {', '.join(TOUCH_RECORD_VALUES)}")

    @model_validator(mode="after")
    def _owned(self) -> TouchFieldMapping:
        if self.policy == Policy.FILL_IF_EMPTY:
            raise ValueError(
                "touchpoint records are closedloop's own: policy is overwrite (default) or never"
            )
        return self


class ModelFields(Strict):
    """The record fields that carry one attribution model's credit (0 to 1) and revenue."""

    model: ModelName
    credit_field: str
    revenue_field: str | None = Field(None, description="Deal amount x credit, base currency.")


class TouchpointRecords(Strict):
    """One CRM record per touch (opt-in): under its person, and one per touch of each
    attributed deal's journey, under the deal, with each model's credit."""

    enabled: bool = False
    lookback_days: int = Field(
        365, ge=1, description="Touches older than this get no record (written ones stay)."
    )
    fields: list[TouchFieldMapping] = Field(default_factory=list)
    models: list[ModelFields] = Field(
        default_factory=list, description="Credits carried on opportunity-level records."
    )

    @model_validator(mode="after")
    def _unique(self) -> TouchpointRecords:
        names = [f.field for f in self.fields] + [
            name for m in self.models for name in (m.credit_field, m.revenue_field) if name
        ]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"record field mapped twice: {', '.join(dupes)}")
        models = [m.model for m in self.models]
        twice = sorted({m for m in models if models.count(m) > 1})
        if twice:
            raise ValueError(f"model listed twice: {', '.join(twice)}")
        return self

    def active_fields(self) -> list[TouchFieldMapping]:
        return [f for f in self.fields if f.policy != Policy.NEVER]


class IdentityFields(Strict):
    """Which CRM field holds each identity of a person."""

    email: str | None = "email"
    ga_client_id: str | None = None
    user_id: str | None = None
    gclid: str | None = None
    fbclid: str | None = None
    gbraid: str | None = Field(None, description="Google Ads app/iOS click id (conversions).")
    wbraid: str | None = Field(None, description="Google Ads web-to-app click id (conversions).")
    li_fat_id: str | None = Field(None, description="LinkedIn first-party click id.")
    meta_lead_id: str | None = Field(None, description="Meta lead ads lead id (conversions).")
    phone: str | None = Field(
        None, description="Phone number: hashed for the ad platforms, never stored raw."
    )


class CapturedUtm(Strict):
    """UTM values a form captured on the record: a touchpoint at the record's creation."""

    source: str | None = None
    medium: str | None = None
    campaign: str | None = None


class CrmMapping(Strict):
    identity: IdentityFields = IdentityFields()
    captured_utm: CapturedUtm = CapturedUtm()
    property_group: str = "closedloop"
    create_missing_fields: bool = True
    fields: list[FieldMapping]
    deal_fields: list[DealFieldMapping] = Field(
        default_factory=list, description="Attribution summary on each deal / opportunity."
    )
    deal_model: str | None = Field(
        None, description="Model behind deal_fields; default: report_model"
    )
    touchpoint_records: TouchpointRecords = Field(
        default_factory=TouchpointRecords, description="One CRM record per touch (opt-in)."
    )

    @model_validator(mode="after")
    def _unique_fields(self) -> CrmMapping:
        for group in (self.fields, self.deal_fields):
            names = [f.field for f in group]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"field mapped twice: {', '.join(dupes)}")
        return self

    def read_properties(self) -> list[str]:
        """Person fields the extract step reads."""
        ids = [v for v in self.identity.model_dump().values() if v]
        utm = [v for v in self.captured_utm.model_dump().values() if v]
        return list(dict.fromkeys([*ids, *utm]))


def load_channel_rules(path: Path) -> ChannelRules:
    doc = load_yaml(path)
    return validate(doc, ChannelRules, doc.data)  # type: ignore[no-any-return]


def load_crm_mapping(path: Path) -> CrmMapping:
    doc = load_yaml(path)
    return validate(doc, CrmMapping, doc.data)  # type: ignore[no-any-return]


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the files people edit, keyed by file stem."""
    from connector.config.campaigns import CampaignRules
    from connector.config.conversions import ConversionsMapping
    from connector.config.loader import typed_config_model

    return {
        "channels": ChannelRules.model_json_schema(by_alias=True),
        "conversions": ConversionsMapping.model_json_schema(),
        "crm_mapping": CrmMapping.model_json_schema(),
        "campaigns": CampaignRules.model_json_schema(),
        "config": typed_config_model().model_json_schema(),
    }
