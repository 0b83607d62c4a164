"""Preflight: every mapped CRM field exists, is writable and fits, before anything is written.

Missing fields are created where the CRM allows it (HubSpot properties in their own group).
"""

from __future__ import annotations

from connector.config.mappings import FieldMapping, Policy
from connector.config.yamlfile import load_yaml
from connector.kernel.errors import ConfigError
from connector.kernel.records import FieldSpec
from connector.run.context import RunContext


def targets(ctx: RunContext) -> list[tuple[str, str, list[FieldMapping]]]:
    """(CRM object, mapping key, active field mappings) for every object closedloop writes."""
    persons = [m for m in ctx.mapping.fields if m.policy != Policy.NEVER]
    deals: list[FieldMapping] = [m for m in ctx.mapping.deal_fields if m.policy != Policy.NEVER]
    out = [(obj, "fields", persons) for obj in ctx.crm.person_objects]
    if deals:
        out.append((ctx.crm.deal_object, "deal_fields", deals))
    return out


def preflight(ctx: RunContext) -> dict[str, dict[str, FieldSpec]]:
    """Check every mapped field on every object before any write; create missing ones where
    the CRM allows it (HubSpot properties in their own group)."""
    doc = load_yaml(ctx.loaded.resolve(ctx.loaded.config.mappings.crm))
    specs: dict[str, dict[str, FieldSpec]] = {}
    errors: list[str] = []
    for obj, key, mappings in targets(ctx):
        described = ctx.crm.describe_fields(obj)
        missing = [m for m in mappings if m.field not in described]
        if missing and ctx.mapping.create_missing_fields and not ctx.dry_run:
            ctx.crm.create_fields(
                obj,
                [FieldSpec(name=m.field, type=m.type, label=m.label or m.field) for m in missing],
                ctx.mapping.property_group,
            )
            ctx.count("fields_created", len(missing))
            described = ctx.crm.describe_fields(obj)
        positions = {m.field: i for i, m in enumerate(getattr(ctx.mapping, key))}
        for m in mappings:
            where = doc.where((key, positions[m.field], "field"))
            problem = _field_problem(obj, m, described.get(m.field))
            if problem and not (
                problem == "missing" and ctx.dry_run and ctx.mapping.create_missing_fields
            ):
                errors.append(f"{where}: {obj} has no field {m.field!r}" if problem == "missing"
                              else f"{where}: {problem}")  # fmt: skip
        specs[obj] = described
    if errors:
        raise ConfigError(
            "mapping does not fit the CRM; nothing was written:\n" + "\n".join(errors)
        )
    return specs


def _field_problem(obj: str, m: FieldMapping, spec: FieldSpec | None) -> str:
    if spec is None:
        return "missing"
    if not spec.updateable:
        return f"{obj}.{m.field} is read-only"
    if m.type == "number" and spec.type not in {"number", "string"}:
        return f"{obj}.{m.field} is {spec.type}, mapping says number"
    if spec.restricted and spec.picklist is not None and m.value_map:
        bad = sorted(set(m.value_map.values()) - set(spec.picklist))
        if bad:
            return (f"value_map sends {', '.join(map(repr, bad))}, not allowed by "
                    f"{obj}.{m.field} (allowed: {', '.join(spec.picklist)})")  # fmt: skip
    return ""
