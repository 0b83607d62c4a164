"""HubSpot property definitions <-> closedloop's :class:`FieldSpec` (preflight and creation)."""

from __future__ import annotations

from typing import Any

from connector.kernel.errors import ConfigError
from connector.kernel.records import FieldSpec

FIELD_TYPES = {  # FieldSpec.type -> HubSpot (type, fieldType)
    "string": ("string", "text"),
    "number": ("number", "number"),
    "datetime": ("datetime", "date"),
    "date": ("date", "date"),
    "enumeration": ("enumeration", "select"),
    "bool": ("bool", "booleancheckbox"),
}
MAX_STRING_LENGTH = 65_536


def field_spec(definition: Any) -> FieldSpec:
    kind = definition.type if definition.type in FIELD_TYPES else "string"
    meta = definition.modification_metadata
    read_only = bool(meta and meta.read_only_value) or bool(definition.calculated)
    options = tuple(o.value for o in definition.options or ())
    return FieldSpec(
        name=definition.name,
        type=kind,
        updateable=not read_only,
        length=MAX_STRING_LENGTH if kind == "string" else None,
        picklist=options if kind == "enumeration" else None,
        restricted=kind == "enumeration",
        label=definition.label or "",
    )


def property_body(spec: FieldSpec, group: str) -> dict[str, Any]:
    if spec.type not in FIELD_TYPES:
        raise ConfigError(
            f"cannot create HubSpot property {spec.name!r}: unknown type {spec.type!r} "
            f"(one of {', '.join(FIELD_TYPES)})"
        )
    kind, field_type = FIELD_TYPES[spec.type]
    body: dict[str, Any] = {
        "name": spec.name,
        "label": spec.label or spec.name,
        "type": kind,
        "fieldType": field_type,
        "groupName": group,
    }
    if kind == "enumeration":
        if not spec.picklist:
            raise ConfigError(
                f"cannot create HubSpot property {spec.name!r}: an enumeration needs its values"
            )
        body["options"] = [
            {"label": v, "value": v, "displayOrder": i, "hidden": False}
            for i, v in enumerate(spec.picklist)
        ]
    if kind == "bool":
        body["options"] = [
            {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
            {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
        ]
    return body
