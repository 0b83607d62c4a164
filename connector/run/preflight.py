"""Preflights: what must hold before a run reads or writes anything.

:func:`preflight_run` runs before the first step: one cheap authenticated call per system the
steps use, and every CRM field they read or write exists and fits (mapped fields, identity and
captured-UTM fields, value maps against restricted picklists). Every problem is listed at once.
:func:`preflight` is the write-back's own: it creates missing fields where the CRM allows it
(HubSpot properties in their own group) and returns the field specs the values are rendered for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from connector.config.mappings import CrmMapping, FieldMapping, Policy
from connector.config.yamlfile import YamlDocument, load_yaml
from connector.kernel.errors import ConfigError
from connector.kernel.records import FieldSpec
from connector.kernel.timeutil import utcnow
from connector.run.context import RunContext

Specs = dict[str, dict[str, FieldSpec]]


def targets(ctx: RunContext) -> list[tuple[str, str, list[FieldMapping]]]:
    """(CRM object, mapping key, active field mappings) for every object closedloop writes."""
    return targets_of(ctx.mapping, ctx.crm)


def targets_of(mapping: CrmMapping, crm: Any) -> list[tuple[str, str, list[FieldMapping]]]:
    persons = [m for m in mapping.fields if m.policy != Policy.NEVER]
    deals: list[FieldMapping] = [m for m in mapping.deal_fields if m.policy != Policy.NEVER]
    out = [(obj, "fields", persons) for obj in crm.person_objects]
    if deals:
        out.append((crm.deal_object, "deal_fields", deals))
    return out


def preflight_run(ctx: RunContext, steps: Sequence[str]) -> None:
    """Before the first step: every system the steps use answers, every field they use fits."""
    problems = source_problems(ctx) if "extract" in steps else []
    objects: list[str] = []
    if "extract" in steps or "writeback" in steps:
        objects += ctx.crm.person_objects
    if "revenue" in steps or ("writeback" in steps and ctx.mapping.deal_fields):
        objects.append(ctx.crm.deal_object)
    try:
        described = {obj: ctx.crm.describe_fields(obj) for obj in objects}
    except ConfigError as exc:
        problems.append(f"{ctx.crm_kind}: {exc}")
    else:
        doc = load_yaml(ctx.loaded.resolve(ctx.loaded.config.mappings.crm))
        if "extract" in steps:
            problems += identity_problems(ctx.mapping, ctx.crm, doc, described)
        if "writeback" in steps:
            problems += mapped_field_problems(ctx.mapping, ctx.crm, doc, described, True)
    if problems:
        raise ConfigError(
            "the run cannot start; nothing was read or written:\n" + "\n".join(problems)
        )


def source_problems(ctx: RunContext) -> list[str]:
    """Every source's :func:`check_source`, each problem named by its source."""
    problems = []
    for name, source in ctx.sources.items():
        try:
            found = check_source(source)
        except ConfigError as exc:
            found = [str(exc)]
        problems += [f"source {name}: {p}" for p in found]
    return problems


def check_source(source: Any) -> list[str]:
    """One cheap authenticated read: the source's own ``check()``, else yesterday's spend."""
    if hasattr(source, "check"):
        return list(source.check())
    next(iter(source.spend(utcnow() - timedelta(days=1))), None)
    return []


def identity_problems(
    mapping: CrmMapping, crm: Any, doc: YamlDocument, described: Specs
) -> list[str]:
    """Identity and captured-UTM fields the extract step reads must exist on every person
    object (a CRM may silently return nothing for a field it does not have)."""
    problems = []
    for section, fields in (
        ("identity", mapping.identity.model_dump()),
        ("captured_utm", mapping.captured_utm.model_dump()),
    ):
        for key, name in fields.items():
            for obj in crm.person_objects:
                if name and name not in described.get(obj, {}):
                    problems.append(f"{doc.where((section, key))}: {obj} has no field {name!r}")
    return problems


def mapped_field_problems(
    mapping: CrmMapping, crm: Any, doc: YamlDocument, described: Specs, to_be_created_ok: bool
) -> list[str]:
    """Every mapped field exists (or will be created), is writable, and its value map fits."""
    problems = []
    for obj, key, mappings in targets_of(mapping, crm):
        positions = {m.field: i for i, m in enumerate(getattr(mapping, key))}
        for m in mappings:
            where = doc.where((key, positions[m.field], "field"))
            problem = _field_problem(obj, m, described.get(obj, {}).get(m.field))
            if problem == "missing" and to_be_created_ok and mapping.create_missing_fields:
                continue
            if problem:
                problems.append(
                    f"{where}: {obj} has no field {m.field!r}"
                    if problem == "missing"
                    else f"{where}: {problem}"
                )
    return problems


def preflight(ctx: RunContext) -> Specs:
    """The write-back's preflight: create missing fields where the CRM allows it (not in a dry
    run), check every mapped field, return the specs of each object's fields."""
    doc = load_yaml(ctx.loaded.resolve(ctx.loaded.config.mappings.crm))
    specs: Specs = {}
    for obj, _, mappings in targets(ctx):
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
        specs[obj] = described
    errors = mapped_field_problems(ctx.mapping, ctx.crm, doc, specs, ctx.dry_run)
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
