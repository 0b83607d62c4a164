"""The ``touchpoints`` custom object: one record per marketing touch, associated to the contact
it belongs to and, for opportunity-level touches, the deal it gets credit on.

``SCHEMA`` is the body of ``POST /crm/v3/schemas`` (an ``ObjectSchemaEgg``) that creates it, the
single description of the object: the emulator installs exactly this, and a sender can post it.

Reference: https://developers.hubspot.com/docs/api/crm/crm-custom-objects
"""

from __future__ import annotations

from typing import Any

from adapters._touchpoints import ATTRIBUTION_MODELS

OBJECT_NAME = "touchpoints"
UNIQUE_PROPERTY = "touchpoint_key"
ASSOCIATED_OBJECTS = ("CONTACT", "DEAL")


def _property(name: str, label: str, type: str = "string", **extra: Any) -> dict[str, Any]:  # noqa: A002
    field_type = {"string": "text", "number": "number", "datetime": "date"}[type]
    return {"name": name, "label": label, "type": type, "fieldType": field_type, **extra}


def _model_properties(model: str) -> list[dict[str, Any]]:
    words = model.replace("_", " ").replace("w shaped", "W-shaped")
    return [
        _property(
            f"credit_{model}",
            f"Credit ({words})",
            "number",
            description=f"Share of the deal's credit (0 to 1) this touch gets under {words}.",
        ),
        _property(
            f"revenue_{model}",
            f"Revenue ({words})",
            "number",
            description=f"Deal amount times this touch's {words} credit.",
            numberDisplayHint="currency",
        ),
    ]


SCHEMA: dict[str, Any] = {
    "name": OBJECT_NAME,
    "description": "One marketing touch per record, written by closedloop.",
    "labels": {"singular": "Touchpoint", "plural": "Touchpoints"},
    "primaryDisplayProperty": UNIQUE_PROPERTY,
    "secondaryDisplayProperties": ["channel", "occurred_at"],
    "requiredProperties": [UNIQUE_PROPERTY],
    "searchableProperties": [UNIQUE_PROPERTY, "channel", "campaign"],
    "associatedObjects": list(ASSOCIATED_OBJECTS),
    "properties": [
        _property(
            UNIQUE_PROPERTY,
            "Touchpoint key",
            hasUniqueValue=True,
            description="closedloop's stable id for the touch; upserts match on it.",
        ),
        _property("occurred_at", "Occurred at", "datetime"),
        _property("channel", "Channel"),
        _property("source", "Source"),
        _property("medium", "Medium"),
        _property("campaign", "Campaign"),
        _property("landing_page", "Landing page"),
        _property(
            "position",
            "Position",
            description="The touch's roles in the journey, ';'-separated: First, Lead Creation, "
            "Opportunity Creation, Last.",
        ),
        *(p for model in ATTRIBUTION_MODELS for p in _model_properties(model)),
    ],
}
