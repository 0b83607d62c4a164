"""``closedloop doctor``: the checks a run's preflight makes, and more, each on its own, so one
look lists every problem: secrets, key and data files, mapping files, the store, the CRM (mapped,
identity and captured-UTM fields) and each source.

Each finding is ``(mark, text)``: ``ok``, ``warn`` (works, but worth knowing) or ``fail``.
Nothing is written anywhere: no field is created, no store is made.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

from connector import systems
from connector.config.campaigns import load_campaign_rules
from connector.config.loader import LoadedConfig
from connector.config.mappings import CrmMapping, load_channel_rules, load_crm_mapping
from connector.config.yamlfile import load_yaml
from connector.kernel.errors import ClosedloopError
from connector.run.preflight import (
    check_source,
    identity_problems,
    mapped_field_problems,
    targets_of,
)
from connector.store.database import make_engine

Mark = Literal["ok", "warn", "fail"]
Finding = tuple[Mark, str]


def diagnose(loaded: LoadedConfig) -> list[Finding]:
    """Every finding about ``loaded``'s setup, its missing secrets first."""
    found: list[Finding] = [("fail", message) for _, message in loaded.missing_secrets]
    unset = [loc for loc, _ in loaded.missing_secrets]
    cfg = loaded.config
    # (where its settings are in the config, its name in findings, registry class, settings)
    adapters: list[tuple[tuple[Any, ...], str, Any, Any]] = [
        (("crm",), cfg.crm.kind, systems.crm_class(cfg.crm.kind), loaded.crm_settings)
    ] + [
        (("sources", i), f"source {s.name}", systems.source_class(s.kind),
         loaded.source_settings[s.name])
        for i, s in enumerate(cfg.sources)
    ]  # fmt: skip
    for loc, name, _, settings in adapters:
        if not any(missing[: len(loc)] == loc for missing in unset):
            found += _file_findings(name, settings)
    found += _store_findings(loaded)
    crm_path = loaded.resolve(cfg.mappings.crm)
    mapping: CrmMapping | None = _attempt(found, lambda: load_crm_mapping(crm_path))
    _attempt(found, lambda: load_channel_rules(loaded.resolve(cfg.mappings.channels)))
    if cfg.mappings.campaigns is not None:
        campaigns = loaded.resolve(cfg.mappings.campaigns)
        _attempt(found, lambda: load_campaign_rules(campaigns))
    for loc, name, adapter_class, settings in adapters:
        if any(missing[: len(loc)] == loc for missing in unset):
            found.append(("fail", f"{name}: not checked until its secrets are set"))
            continue
        adapter = _attempt(found, partial(adapter_class, settings), f"{name}: ")
        if adapter is None:
            continue
        try:
            if loc == ("crm",):
                if mapping is not None:
                    found += _crm_findings(name, adapter, mapping, crm_path)
            else:
                found += _source_findings(name, adapter)
        finally:
            adapter.close()
    touch_records = mapping is not None and mapping.touchpoint_records.enabled
    if (cfg.mappings.conversions is not None or touch_records) and not unset:
        found += _context_findings(loaded)
    return found


def _context_findings(loaded: LoadedConfig) -> list[Finding]:
    """The checks that need a run's context: the conversions step's preflight (every
    destination exists and takes uploads, every consent field exists) and the touchpoint
    records' (the object and its mapped fields, or why the CRM cannot hold them)."""
    from connector.run.context import build_context

    try:
        ctx = build_context(loaded, create_store=False, must_exist=False)
    except ClosedloopError as exc:
        return [("fail", str(exc))]
    ctx.dry_run = True  # describe only: doctor creates nothing (no custom object, no field)
    try:
        return _conversion_findings(ctx) + _touch_record_findings(ctx)
    finally:
        ctx.close()


def _conversion_findings(ctx: Any) -> list[Finding]:
    from connector.run.conversions import preflight_conversions

    if ctx.conversions is None or not ctx.conversions.mapping.conversions:
        return []
    try:
        found = preflight_conversions(ctx)
    except ClosedloopError as exc:
        return [("fail", f"conversions: {exc}")]
    entries = zip(ctx.conversions.mapping.conversions, found, strict=True)
    names = ", ".join(f"{m.name} → {d.name or d.id}" for m, d in entries)
    return [("ok", f"conversions: destinations exist and take uploads ({names})")]


def _touch_record_findings(ctx: Any) -> list[Finding]:
    from connector.kernel.errors import Unavailable
    from connector.run.touch_records import preflight, writer_of

    if not ctx.mapping.touchpoint_records.enabled:
        return []
    try:
        schema = preflight(ctx, writer_of(ctx))
    except Unavailable as exc:
        return [("warn", f"touchpoint records will be skipped: {exc}")]
    except ClosedloopError as exc:
        return [("fail", f"touchpoint records: {exc}")]
    if schema.pending:
        return [("warn", f"touchpoint records: the {schema.object} object will be created on "
                         "the first sync, with every mapped field")]  # fmt: skip
    return [("ok", f"touchpoint records: {schema.object} exists; every mapped field is there "
                   "and writable")]  # fmt: skip


def _attempt(found: list[Finding], load: Callable[[], Any], prefix: str = "") -> Any:
    try:
        return load()
    except ClosedloopError as exc:
        found.append(("fail", f"{prefix}{exc}"))
        return None


def _file_findings(name: str, settings: Any) -> list[Finding]:
    """Key files and data files the settings name exist and can be read."""
    found: list[Finding] = []
    for field, value in settings or ():
        if not isinstance(value, Path):
            continue
        try:
            with value.open("rb") as handle:
                handle.read(1)
        except IsADirectoryError:
            found.append(("fail", f"{name}: {field} {value} is a folder, not a file"))
        except FileNotFoundError:
            found.append(("fail", f"{name}: {field} {value} does not exist"))
        except OSError as exc:
            found.append(("fail", f"{name}: {field} {value} cannot be read ({exc.strerror})"))
    return found


def _store_findings(loaded: LoadedConfig) -> list[Finding]:
    try:
        make_engine(loaded.store_url(), create=False).dispose()
    except ClosedloopError as exc:
        if "run a sync first" in str(exc):
            return [("ok", "store: none yet; the first sync creates it")]
        return [("fail", str(exc))]
    return [("ok", "store: reachable")]


def _crm_findings(name: str, crm: Any, mapping: CrmMapping, mapping_path: Path) -> list[Finding]:
    try:
        objects = dict.fromkeys([*crm.person_objects, crm.deal_object])
        described = {obj: crm.describe_fields(obj) for obj in objects}
    except ClosedloopError as exc:
        return [("fail", f"{name}: {exc}")]
    doc = load_yaml(mapping_path)
    problems = identity_problems(mapping, crm, doc, described)
    problems += mapped_field_problems(mapping, crm, doc, described, to_be_created_ok=True)
    found: list[Finding] = [("fail", p) for p in problems]
    if not problems:
        fits = ", ".join(f"{o} ({len(s)} fields)" for o, s in described.items())
        found.append(("ok", f"{name} reachable; identity, UTM and mapped fields fit: {fits}"))
    missing = [
        f"{obj}.{m.field}"
        for obj, _, mappings in targets_of(mapping, crm)
        for m in mappings
        if m.field not in described.get(obj, {})
    ]
    if missing and mapping.create_missing_fields:
        found.append(("warn", f"will be created on first sync: {', '.join(missing)}"))
    return found


def _source_findings(name: str, source: Any) -> list[Finding]:
    try:
        problems = check_source(source)
    except ClosedloopError as exc:
        problems = [str(exc)]
    if problems:
        return [("fail", f"{name}: {p}") for p in problems]
    return [("ok", f"{name}: reachable")]
