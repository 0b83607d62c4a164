"""The two small protocols every adapter implements: a source reads, a CRM reads and writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from connector.kernel.records import (
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
    """Reads touchpoints and spend from one marketing system."""

    Settings: ClassVar[type[BaseModel]]

    def __init__(self, settings: Any) -> None: ...

    def touchpoints(self, since: datetime) -> Iterator[Touchpoint]: ...

    def spend(self, since: datetime) -> Iterator[Spend]: ...

    def api_calls(self) -> int: ...

    def close(self) -> None: ...


class CrmAdapter(Protocol):
    """Reads people and deals from a CRM and writes fields back.

    ``person_objects`` are the CRM's object names for people (HubSpot ``contacts``; Salesforce
    ``Lead`` and ``Contact``), ``deal_object`` the one for deals.
    """

    Settings: ClassVar[type[BaseModel]]
    max_batch: ClassVar[int]

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

    def read_values(
        self, obj: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, str | None]]: ...

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
