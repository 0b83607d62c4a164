"""The one registry of external systems.

Adding a system = one package ``adapters/<name>/`` (``adapter.py`` + ``emulator.py``) and one
line here. Entries are import paths so a vendor SDK loads only when its adapter is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

SOURCES: dict[str, str] = {
    "ga4": "adapters.ga4.adapter:Ga4Source",
    "google_ads": "adapters.google_ads.adapter:GoogleAdsSource",
    "meta_ads": "adapters.meta_ads.adapter:MetaAdsSource",
    "linkedin_ads": "adapters.linkedin_ads.adapter:LinkedInAdsSource",
    "csv_files": "adapters.csv_files.adapter:CsvFilesSource",
}

# Sources that also take CRM outcomes back as offline conversions (ConversionSink).
SINKS: frozenset[str] = frozenset({"google_ads", "meta_ads", "linkedin_ads"})

CRMS: dict[str, str] = {
    "hubspot": "adapters.hubspot.adapter:HubSpotCrm",
    "salesforce": "adapters.salesforce.adapter:SalesforceCrm",
}

# A CRM's touchpoint object (one record per touch), built from its CRM adapter.
TOUCH_RECORDS: dict[str, str] = {
    "hubspot": "adapters.hubspot.touch_records:HubSpotTouchRecords",
    "salesforce": "adapters.salesforce.touch_records:SalesforceTouchRecords",
}


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def source_class(kind: str) -> Any:
    """The SourceAdapter class registered as ``kind``."""
    return _load(SOURCES[kind])


def crm_class(kind: str) -> Any:
    """The CrmAdapter class registered as ``kind``."""
    return _load(CRMS[kind])


def touch_records_class(kind: str) -> Any:
    """The TouchRecordWriter of the CRM registered as ``kind``, or None if it has none."""
    path = TOUCH_RECORDS.get(kind)
    return _load(path) if path else None


def _package(kind: str) -> str:
    path = SOURCES.get(kind) or CRMS[kind]
    return path.partition(":")[0].rsplit(".", 1)[0]


def has_emulator(kind: str) -> bool:
    """Whether ``kind`` talks to an API (and so ships an emulator) rather than reading files."""
    return importlib.util.find_spec(f"{_package(kind)}.emulator") is not None


def emulator_class(kind: str) -> Any:
    """The emulator class beside the adapter registered as ``kind``."""
    return importlib.import_module(f"{_package(kind)}.emulator").Emulator
