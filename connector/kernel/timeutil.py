"""The one place that parses and normalises dates and times (all aware, UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator


def parse_datetime(value: str) -> datetime:
    """Parse ISO-8601 (``Z`` or offset; Salesforce's ``+0000`` too) into an aware UTC datetime.

    A value without an offset is taken as UTC: vendors that omit it mean UTC.
    """
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit() and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def from_epoch_ms(value: int | str) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def to_epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``America/Los_Angeles``, HubSpot's ``US/Eastern``...).

    Raises ValueError for a name the system's time zone database does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _known_zone(name: str) -> str:
    zone(name)
    return name


# A settings field holding an IANA time zone name, checked when the config is loaded.
TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar day ``moment`` falls on in ``tz``."""
    return moment.astimezone(tz).date()


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """00:00 of ``day`` in ``tz``, as an aware UTC datetime."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def day_end(day: date, tz: ZoneInfo) -> datetime:
    """When ``day`` ends in ``tz`` (00:00 of the next day there), as an aware UTC datetime."""
    return day_start(day + timedelta(days=1), tz)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_z(value: datetime) -> str:
    """``2024-05-01T10:00:00.000Z``: the form HubSpot and Salesforce print."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )
