"""The small protocols adapters implement: a source reads, a CRM reads and writes, and an ad
platform source may also take conversions back (a sink)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from connector.kernel.records import (
    Conversion,
    ConversionAdjustment,
    ConversionDestination,
    ConversionResult,
    CrmDeal,
    CrmRecord,
    FieldSpec,
    RecordUpdate,
    Spend,
    Touchpoint,
    TouchRecordDelete,
    TouchRecordResult,
    TouchRecordState,
    TouchRecordWrite,
    TouchSchema,
    WriteResult,
)


class SourceAdapter(Protocol):
    """Reads touchpoints and spend from one marketing system.

    A source may declare ``full_refresh``, the streams (``touchpoints``, ``spend``) of which every
    read returns all of its rows (files): the rows of earlier reads that a read of such a stream
    no longer returns are then removed.
    """

    Settings: ClassVar[type[BaseModel]]

    def __init__(self, settings: Any) -> None: ...

    def touchpoints(self, since: datetime) -> Iterator[Touchpoint]: ...

    def spend(self, since: datetime) -> Iterator[Spend]: ...

    def api_calls(self) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class RejectsRows(Protocol):
    """A source that skips input rows it cannot use (files) and says which."""

    def rejected_rows(self) -> tuple[int, list[str]]:
        """(how many rows the last read rejected, the first of them as
        ``file:line:column: reason``)."""
        ...


class CrmAdapter(Protocol):
    """Reads people and deals from a CRM and writes fields back.

    ``person_objects`` are the CRM's object names for people (HubSpot ``contacts``; Salesforce
    ``Lead`` and ``Contact``), ``deal_object`` the one for deals. ``time_zone`` is the IANA name
    of the time zone the CRM's dates are in (the Salesforce org's, the HubSpot portal's).
    """

    Settings: ClassVar[type[BaseModel]]
    max_batch: ClassVar[int]
    # The finest step the CRM's modification-time filters compare (SOQL: whole seconds).
    modified_resolution: ClassVar[timedelta]

    def __init__(self, settings: Any) -> None: ...

    @property
    def person_objects(self) -> tuple[str, ...]: ...

    @property
    def deal_object(self) -> str: ...

    def describe_fields(self, obj: str) -> dict[str, FieldSpec]: ...

    def create_fields(self, obj: str, fields: Sequence[FieldSpec], group: str) -> None: ...

    def contacts(
        self, since: datetime | None, properties: Sequence[str]
    ) -> Iterator[CrmRecord]: ...

    def deals(self, since: datetime | None) -> Iterator[CrmDeal]: ...

    def time_zone(self) -> str: ...

    def read_values(
        self, obj: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, str | None]]: ...

    def modified_since(self, obj: str, since: datetime) -> set[str]:
        """Ids of the ``obj`` records the CRM modified at or after ``since``."""
        ...

    def count_modified(self, obj: str, start: datetime, end: datetime) -> int:
        """How many ``obj`` records the CRM last modified in [start, end) (both on a whole
        ``modified_resolution``)."""
        ...

    def write(
        self,
        obj: str,
        updates: Sequence[RecordUpdate],
        on_batch: Callable[[list[WriteResult]], None] | None = None,
    ) -> list[WriteResult]:
        """Write in the API's batches; ``on_batch`` sees each batch's results as they land."""
        ...

    def api_calls(self) -> int: ...

    def close(self) -> None: ...


class ConversionSink(Protocol):
    """An ad platform source that also takes CRM outcomes back as offline conversions.

    The core hashes identifiers with :meth:`hash_email` / :meth:`hash_phone` when it reads the
    CRM (raw values never reach the store), checks :meth:`conversion_destinations` before the
    first send, then sends in the API's batches; ``on_batch`` sees each batch's results as they
    land, so they are recorded before the next batch goes out.
    """

    max_conversions: ClassVar[int]  # per request
    event_max_age: ClassVar[timedelta]  # the oldest conversion the platform takes
    adjustable: ClassVar[bool]  # value restatements and retractions supported

    @property
    def test_mode(self) -> bool:
        """True while conversions go to the platform's test tool instead of counting live."""
        ...

    def hash_email(self, email: str) -> str: ...

    def hash_phone(self, e164_digits: str) -> str: ...

    def conversion_destinations(self, ids: Sequence[str]) -> dict[str, ConversionDestination]: ...

    def send_conversions(
        self,
        conversions: Sequence[Conversion],
        on_batch: Callable[[list[ConversionResult]], None] | None = None,
    ) -> list[ConversionResult]: ...

    def adjust_conversions(
        self,
        adjustments: Sequence[ConversionAdjustment],
        on_batch: Callable[[list[ConversionResult]], None] | None = None,
    ) -> list[ConversionResult]: ...


class TouchRecordWriter(Protocol):
    """A CRM's touchpoint object (one record per touch): built from the CRM adapter it shares
    its connection, limits and retries with (``adapters.TOUCH_RECORDS``).

    Writes report each batch's results to ``on_batch`` as they land, in input order."""

    object_name: str  # the object's name in the CRM (audits, messages)

    def __init__(self, crm: Any) -> None: ...

    def schema(self, create: bool) -> TouchSchema:
        """Check the object (create it first where the CRM allows and ``create``); raise
        ConfigError saying exactly what is missing, or Unavailable when the CRM cannot hold it."""
        ...

    def create_fields(self, fields: Sequence[FieldSpec], group: str) -> None:
        """Add mapped fields the object lacks, where the CRM lets closedloop (else ConfigError)."""
        ...

    def upsert(
        self,
        records: Sequence[TouchRecordWrite],
        on_batch: Callable[[list[TouchRecordResult]], None] | None = None,
    ) -> list[TouchRecordResult]: ...

    def delete(
        self,
        records: Sequence[TouchRecordDelete],
        on_batch: Callable[[list[TouchRecordResult]], None] | None = None,
    ) -> list[TouchRecordResult]:
        """Delete by CRM id; a record that is already gone counts as deleted."""
        ...

    def read(self, keys: Sequence[str], fields: Sequence[str]) -> dict[str, TouchRecordState]:
        """The records with these keys as the CRM holds them (absent keys are left out)."""
        ...
