"""The ``CL_Touchpoint__c`` custom object: one record per marketing touch, under the lead or
contact it belongs to and, for opportunity-level touches, the opportunity it gets credit on.

This is the single description of the object. The metadata package admins deploy
(``deploy/salesforce/force-app``) must match it (a test compares every XML file with it), the
emulator installs exactly these fields, and a preflight can compare it with a describe.

Reference: https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customfield.htm
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adapters._touchpoints import ATTRIBUTION_MODELS

OBJECT_NAME = "CL_Touchpoint__c"
LABEL = "Touchpoint"
PLURAL_LABEL = "Touchpoints"
NAME_FIELD_LABEL = "Touchpoint Number"
NAME_FORMAT = "TP-{0000000}"  # an auto-number: the sender never writes Name
EXTERNAL_ID = "Touchpoint_Key__c"
PERMISSION_SET = "Closedloop_Touchpoints"

FieldType = Literal["Text", "Lookup", "DateTime", "Number", "Currency"]


@dataclass(frozen=True)
class CustomField:
    """One custom field as the Metadata API declares it (``CustomField`` in the XML)."""

    name: str
    label: str
    type: FieldType
    description: str
    length: int | None = None  # Text
    precision: int | None = None  # Number, Currency: digits in all
    scale: int | None = None  # Number, Currency: digits after the point
    reference_to: str | None = None  # Lookup
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False

    @property
    def delete_constraint(self) -> str | None:
        """Lookups are cleared, not blocking, when the person or opportunity is deleted."""
        return "SetNull" if self.type == "Lookup" else None

    @property
    def relationship_name(self) -> str | None:
        """The child relationship on the parent (``Contact.Closedloop_Touchpoints__r``)."""
        return "Closedloop_Touchpoints" if self.type == "Lookup" else None


def _text(name: str, label: str, description: str, length: int = 255) -> CustomField:
    return CustomField(name, label, "Text", description, length=length)


def _lookup(parent: str, description: str) -> CustomField:
    return CustomField(f"{parent}__c", parent, "Lookup", description, reference_to=parent)


def _model_fields(model: str) -> tuple[CustomField, CustomField]:
    title = "_".join(part.title() for part in model.split("_"))  # w_shaped -> W_Shaped
    words = title.replace("_", " ").replace("W Shaped", "W-Shaped")
    return (
        CustomField(
            f"Credit_{title}__c",
            f"Credit {words}",
            "Number",
            f"Share of the opportunity's credit (0 to 1) this touch gets under {words}.",
            precision=5,
            scale=4,
        ),
        CustomField(
            f"Revenue_{title}__c",
            f"Revenue {words}",
            "Currency",
            f"Opportunity amount times this touch's {words} credit.",
            precision=16,
            scale=2,
        ),
    )


FIELDS: tuple[CustomField, ...] = (
    CustomField(
        EXTERNAL_ID,
        "Touchpoint Key",
        "Text",
        "closedloop's stable id for the touch; upserts match on it.",
        length=80,
        external_id=True,
        unique=True,
        case_sensitive=True,
    ),
    _lookup("Lead", "The lead this touch belongs to (until it is converted)."),
    _lookup("Contact", "The contact this touch belongs to."),
    _lookup("Opportunity", "The opportunity this touch gets attribution credit on."),
    CustomField("Occurred_At__c", "Occurred At", "DateTime", "When the touch happened."),
    _text("Channel__c", "Channel", "closedloop's channel for the touch (Paid Search, Email...)."),
    _text("Source__c", "Source", "utm_source or the platform's source."),
    _text("Medium__c", "Medium", "utm_medium or the platform's medium."),
    _text("Campaign__c", "Campaign", "utm_campaign or the ad platform's campaign name."),
    _text("Landing_Page__c", "Landing Page", "The page the touch landed on."),
    _text(
        "Position__c",
        "Position",
        "The touch's roles in the journey, ';'-separated: First, Lead Creation, "
        "Opportunity Creation, Last.",
    ),
    *(field for model in ATTRIBUTION_MODELS for field in _model_fields(model)),
)

FIELDS_BY_NAME: dict[str, CustomField] = {field.name: field for field in FIELDS}
