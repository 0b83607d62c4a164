"""Offline files source: touchpoints (trade shows, webinars, calls) and spend from CSV files.

Streams read:

- ``touchpoints`` from ``touchpoints_file``: columns ``email`` or ``crm_id`` (one per row;
  ``crm_id`` wins when both are given), ``occurred_at`` (``YYYY-MM-DD`` = midnight UTC, or
  ISO-8601), ``channel`` (required), optional ``campaign``, ``source``, ``medium``, ``note``.
  Emails become :attr:`IdentityKind.EMAIL_SHA256` (the raw address is never kept). The key is a
  hash of the row's normalised content: re-importing a file yields the same keys, a changed row
  a new one.
- ``spend`` from ``spend_file``: ``platform``, ``campaign``, ``date``, ``cost`` (required),
  optional ``campaign_id`` (defaults to ``campaign``), ``currency`` (defaults to
  ``default_currency``), ``clicks``, ``impressions``, ``channel``, ``account``.

Files are read whole on every run (``since`` is ignored: offline rows often arrive late, and the
keys make re-reading harmless), so a file is the truth for the rows that came from it
(``full_refresh``: the streams whose file is configured): a row edited or removed in the file
replaces or removes the one stored. A row that cannot be used — a cell that does not parse, a
byte that is not UTF-8, a line over :data:`.table.MAX_LINE` characters (read through in chunks,
so memory stays bounded), malformed quoting — is skipped and reported with file, line and
column: the first :data:`KEPT` of each file in :attr:`rejected`, all of them in
:attr:`rejected_count`. A missing
file or required header is a :class:`ConfigError`.
Format: RFC 4180 CSV, UTF-8 (a BOM is accepted), header names case-insensitive.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.csv_files.table import BadValue, Reject, RowError, Table
from connector.kernel.errors import ConfigError
from connector.kernel.identity import email_hash
from connector.kernel.records import IdentityKind, Spend, Touchpoint
from connector.kernel.timeutil import parse_datetime

__all__ = ["CsvFilesSettings", "CsvFilesSource", "RowError"]

SOURCE = "csv_files"
TOUCH_REQUIRED = ("occurred_at", "channel")
TOUCH_IDENTITY = ("email", "crm_id")
SPEND_REQUIRED = ("platform", "campaign", "date", "cost")
CACHE_SIZE = 100_000
KEPT = 100  # rejected rows kept per file (all are counted)
# A day's cost above this is no real spend (a unit or export error); below it float sums keep
# every cent.
MAX_AMOUNT = 1e12

log = logging.getLogger(__name__)
R = TypeVar("R")


class CsvFilesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    touchpoints_file: Path | None = Field(None, description="CSV of offline touchpoints.")
    spend_file: Path | None = Field(None, description="CSV of spend per campaign and day.")
    default_currency: str = Field("USD", description="Currency of spend rows without one.")

    @field_validator("default_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not (len(value) == 3 and value.isalpha()):
            raise ValueError("expected a 3-letter ISO currency code such as USD")
        return value.upper()


class CsvFilesSource:
    """SourceAdapter over one offline touchpoints file and one spend file."""

    Settings: ClassVar[type[CsvFilesSettings]] = CsvFilesSettings

    def __init__(self, settings: CsvFilesSettings) -> None:
        self.settings = settings
        self.rejected: list[RowError] = []  # of the last read of each file, the first KEPT
        self.rejected_count: dict[Path, int] = {}  # of the last read of each file, all

    @property
    def full_refresh(self) -> frozenset[str]:
        """The streams every read returns whole: those with a file (a stream without one says
        nothing about the rows it read before)."""
        files = {"touchpoints": self.settings.touchpoints_file, "spend": self.settings.spend_file}
        return frozenset(stream for stream, path in files.items() if path is not None)

    def api_calls(self) -> int:
        return 0

    def rejected_rows(self) -> tuple[int, list[str]]:
        """:class:`connector.kernel.protocols.RejectsRows`: the last read of each file."""
        return sum(self.rejected_count.values()), [str(e) for e in self.rejected]

    def check(self) -> list[str]:
        """Both files exist, are readable and have their required columns (no rows read)."""
        problems = []
        for path, required, one_of in (
            (self.settings.touchpoints_file, TOUCH_REQUIRED, TOUCH_IDENTITY),
            (self.settings.spend_file, SPEND_REQUIRED, ()),
        ):
            if path is not None:
                try:
                    Table(path, required, one_of).handle.close()
                except ConfigError as exc:
                    problems.append(str(exc))
        return problems

    def close(self) -> None:
        """Nothing to release: each read closes its file."""

    def touchpoints(self, since: datetime) -> Iterator[Touchpoint]:
        if self.settings.touchpoints_file is not None:
            yield from self._read(
                self.settings.touchpoints_file, self._touch_rows, TOUCH_REQUIRED, TOUCH_IDENTITY
            )

    def spend(self, since: datetime) -> Iterator[Spend]:
        if self.settings.spend_file is not None:
            yield from self._read(self.settings.spend_file, self._spend_rows, SPEND_REQUIRED)

    # -- file plumbing ---------------------------------------------------------------------
    def _read(
        self,
        path: Path,
        rows: Callable[[Table, Reject], Iterator[R]],
        required: Sequence[str],
        one_of: Sequence[str] = (),
    ) -> Iterator[R]:
        self.rejected = [error for error in self.rejected if error.file != path]
        rejected: list[RowError] = []
        count = 0

        def reject(line: int, error: BadValue) -> None:
            nonlocal count
            count += 1
            if len(rejected) < KEPT:
                rejected.append(RowError(path, line, error.column, error.reason))

        table = Table(path, required, one_of)
        try:
            yield from rows(table, reject)
        finally:
            table.handle.close()
            self.rejected.extend(rejected)
            self.rejected_count[path] = count
            if rejected:
                first = rejected[0].message
                log.warning("%s: %d rows rejected; first: %s", path, count, first)

    # -- touchpoints -----------------------------------------------------------------------
    def _touch_rows(self, table: Table, reject: Reject) -> Iterator[Touchpoint]:
        i_email, i_crm = table.index("email"), table.index("crm_id")
        i_at, i_channel = table.index("occurred_at"), table.index("channel")
        i_campaign, i_source = table.index("campaign"), table.index("source")
        i_medium, i_note = table.index("medium"), table.index("note")
        # People and event times recur across rows: parse and hash each once (bounded caches).
        moments: dict[str, tuple[datetime, str]] = {}
        hashes: dict[str, str] = {}
        blake2b = hashlib.blake2b
        crm_kind, email_kind = IdentityKind.CRM_ID, IdentityKind.EMAIL_SHA256
        for row in table.rows(reject):
            try:
                identity = row[i_crm].strip()
                kind = crm_kind
                if not identity:
                    email = row[i_email].strip()
                    if "@" not in email:
                        problem = (
                            f"{email!r} is not an email address"
                            if email
                            else "either email or crm_id is required"
                        )
                        raise BadValue("email", problem)
                    kind, identity = email_kind, hashes.get(email, "")
                    if not identity:
                        if len(hashes) >= CACHE_SIZE:
                            hashes.clear()
                        identity = hashes[email] = email_hash(email)
                text = row[i_at].strip()
                moment = moments.get(text)
                if moment is None:
                    if len(moments) >= CACHE_SIZE:
                        moments.clear()
                    moment = moments[text] = _moment(text)
                channel = row[i_channel].strip()
                if not channel:
                    raise BadValue("channel", "is empty (a channel such as Events is required)")
            except BadValue as error:
                reject(table.reader.line_num, error)
                continue
            campaign, source = row[i_campaign].strip(), row[i_source].strip()
            medium, note = row[i_medium].strip(), row[i_note].strip()
            content = "\x1f".join(
                (kind, identity, moment[1], channel, campaign, source, medium, note)
            )
            yield Touchpoint(
                source=SOURCE,
                key=blake2b(content.encode(), digest_size=16).hexdigest(),
                occurred_at=moment[0],
                identity_kind=kind,
                identity_value=identity,
                utm_source=source,
                utm_medium=medium,
                utm_campaign=campaign,
                channel=channel,
            )

    # -- spend -----------------------------------------------------------------------------
    def _spend_rows(self, table: Table, reject: Reject) -> Iterator[Spend]:
        i_platform, i_campaign = table.index("platform"), table.index("campaign")
        i_date, i_cost = table.index("date"), table.index("cost")
        i_campaign_id, i_currency = table.index("campaign_id"), table.index("currency")
        i_clicks, i_impressions = table.index("clicks"), table.index("impressions")
        i_channel, i_account = table.index("channel"), table.index("account")
        default_currency = self.settings.default_currency
        days: dict[str, date] = {}
        # Hashes of (platform, account, campaign_id, day) -> first line: a spend key twice in one
        # file is reported, not silently overwritten. 64-bit hashes keep a million rows at
        # ~100 MB; a false duplicate would need a hash collision (~1e-8 at that size).
        seen: dict[int, int] = {}
        for row in table.rows(reject):
            line = table.reader.line_num
            try:
                platform, campaign = row[i_platform].strip(), row[i_campaign].strip()
                if not platform or not campaign:
                    raise BadValue("campaign" if platform else "platform", "is empty")
                text = row[i_date].strip()
                day = days.get(text)
                if day is None:
                    day = days[text] = _day(text)
                cost = _amount(row[i_cost])
                currency = row[i_currency].strip().upper() or default_currency
                if len(currency) != 3 or not currency.isalpha():
                    raise BadValue("currency", f"{currency!r} is not a 3-letter currency code")
                clicks = _count("clicks", row[i_clicks])
                impressions = _count("impressions", row[i_impressions])
                account = row[i_account].strip()
                campaign_id = row[i_campaign_id].strip() or campaign
                first = seen.setdefault(hash((platform, account, campaign_id, day)), line)
                if first != line:
                    raise BadValue(
                        "date", f"duplicate of line {first} (same platform, campaign and date)"
                    )
            except BadValue as error:
                reject(line, error)
                continue
            yield Spend(
                platform=platform,
                account=account,
                campaign_id=campaign_id,
                campaign=campaign,
                day=day,
                cost=cost,
                currency=currency,
                clicks=clicks,
                impressions=impressions,
                channel=row[i_channel].strip(),
            )


def _moment(text: str) -> tuple[datetime, str]:
    """``occurred_at`` -> (aware UTC datetime, its canonical text for the key)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = parse_datetime(text)
    except ValueError:
        raise BadValue(
            "occurred_at", f"{text!r} is not a date (expected YYYY-MM-DD or ISO-8601)"
        ) from None
    return moment, moment.isoformat()


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadValue("date", f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadValue(
            "cost", f"{text.strip()!r} is not a number (expected e.g. 1234.50)"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise BadValue("cost", f"{text.strip()!r} is not a non-negative amount")
    if value > MAX_AMOUNT:
        raise BadValue(
            "cost", f"{text.strip()!r} is not a plausible day's spend (at most {MAX_AMOUNT:,.0f})"
        )
    return value


def _count(column: str, text: str) -> int:
    if not text or text.isspace():
        return 0
    try:
        value = int(text)
    except ValueError:
        raise BadValue(column, f"{text!r} is not a whole number") from None
    if value < 0:
        raise BadValue(column, f"{text!r} is negative")
    if value > MAX_AMOUNT:
        raise BadValue(column, f"{text!r} is not a plausible count (at most {MAX_AMOUNT:,.0f})")
    return value
