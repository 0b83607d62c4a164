"""The one door from the core to the external systems: adapters, their settings models and
emulators, looked up by name in the registry (``adapters/__init__.py``).

The core never imports an adapter package; it asks here, by the name the config uses. The
registry module is loaded by name too, so a vendor SDK loads only when its adapter is used.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

REGISTRY = "adapters"


def _registry() -> ModuleType:
    return importlib.import_module(REGISTRY)


def crm_kinds() -> list[str]:
    """The CRM names a config may use under ``crm.kind``."""
    return sorted(_registry().CRMS)


def source_kinds() -> list[str]:
    """The source names a config may use under ``sources[].kind``."""
    return sorted(_registry().SOURCES)


def sink_kinds() -> list[str]:
    """The source names whose adapter also takes conversions back (a ConversionSink)."""
    return sorted(_registry().SINKS)


def crm_class(kind: str) -> Any:
    """The CrmAdapter class registered as ``kind`` (its ``Settings`` validates its config)."""
    return _registry().crm_class(kind)


def touch_records_class(kind: str) -> Any:
    """The TouchRecordWriter of the CRM ``kind`` (built from its adapter), or None."""
    return _registry().touch_records_class(kind)


def source_class(kind: str) -> Any:
    """The SourceAdapter class registered as ``kind``."""
    return _registry().source_class(kind)


def has_emulator(kind: str) -> bool:
    """Whether ``kind`` talks to an API (and so ships an emulator) rather than reading files."""
    return bool(_registry().has_emulator(kind))


def emulator_class(kind: str) -> Any:
    """The wire-faithful emulator beside the adapter registered as ``kind``."""
    return _registry().emulator_class(kind)
