"""Reading one CSV file row by row, safely: bounded lines, bytes that are not UTF-8 and broken
quoting reject their row (with its line and column), never the file or the run."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from connector.kernel.errors import ConfigError

MAX_LINE = 1 << 20  # characters; a longer line is a broken export, not data
Reject = Callable[[int, "BadValue"], None]


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: where it is (the column's name, or its place in the line) and why."""

    file: Path
    line: int
    column: str
    reason: str

    @property
    def message(self) -> str:
        return f"line {self.line}, column {self.column}: {self.reason}"

    def __str__(self) -> str:
        where = f"{self.column}:" if self.column.isdigit() else f" {self.column}:"
        return f"{self.file}:{self.line}:{where} {self.reason}"


class BadValue(ValueError):
    """A cell that does not parse; ``column`` names it."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


class _Lines:
    """The file's lines for the csv reader, none longer than :data:`MAX_LINE` characters.

    A longer line is read through in chunks and handed on empty, its number noted, so its row
    is rejected with bounded memory. The raw lines of the record being parsed are kept until
    :meth:`take`, to place a bad byte by line and column.
    """

    def __init__(self, handle: TextIO) -> None:
        self.handle = handle
        self.number = 0  # lines handed out
        self.record: list[str] = []
        self.too_long: list[int] = []

    def __iter__(self) -> Iterator[str]:
        readline, record, limit = self.handle.readline, self.record, MAX_LINE
        while line := readline(limit + 1):
            if len(line) > limit:
                while line and not line.endswith(("\n", "\r")):
                    line = readline(1 << 16)
                self.too_long.append(self.number + len(record) + 1)
                line = "\n"
            record.append(line)
            yield line

    def take(self) -> tuple[int, str]:
        """(first line number, raw text) of the record just parsed; starts the next record."""
        record = self.record
        first = self.number + 1
        self.number += len(record)
        text = record[0] if len(record) == 1 else "".join(record)
        record.clear()
        return first, text


def _bad_byte(first: int, text: str) -> tuple[int, int, str] | None:
    """(line, column, reason) of the first byte in ``text`` that is not UTF-8 (the file is
    decoded with surrogateescape, which keeps such a byte as a lone surrogate)."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        at = exc.start
    line = first + text.count("\n", 0, at)
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    byte = ord(text[at]) - 0xDC00
    return line, column, f"byte 0x{byte:02X} is not UTF-8 (save the file as UTF-8)"


class Table:
    """An open CSV file: its reader and the position of each column named in the header."""

    def __init__(self, path: Path, required: Sequence[str], one_of: Sequence[str] = ()) -> None:
        try:
            # surrogateescape: a byte that is not UTF-8 rejects its row, not the file
            self.handle: TextIO = path.open(
                newline="", encoding="utf-8-sig", errors="surrogateescape"
            )
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: file not found (check the csv_files source settings)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read file ({exc.strerror})") from None
        self.lines = _Lines(self.handle)
        self.reader = csv.reader(iter(self.lines))
        try:
            header = next(self.reader, None) or []
        except csv.Error as exc:
            self.handle.close()
            raise ConfigError(f"{path}:1: malformed CSV header ({exc})") from None
        bad = _bad_byte(*self.lines.take())
        if bad is not None or self.lines.too_long:
            self.handle.close()
            line, column, reason = bad or (1, 1, f"is over {MAX_LINE:,} characters long")
            raise ConfigError(f"{path}:{line}:{column}: header row: {reason}")
        self.columns = {name.strip().lower(): i for i, name in enumerate(header)}
        self.width = len(header)
        missing = [name for name in required if name not in self.columns]
        if one_of and not any(name in self.columns for name in one_of):
            missing.append(" or ".join(one_of))
        if missing:
            self.handle.close()
            found = ", ".join(self.columns) or "no header row"
            raise ConfigError(
                f"{path}: missing required column {missing[0]!r} in the header (found: {found})"
            )

    def index(self, name: str) -> int:
        """Position of ``name``; a missing optional column reads as the empty pad cell."""
        return self.columns.get(name, self.width)

    def rows(self, reject: Reject) -> Iterator[list[str]]:
        """Rows of the header's width plus one empty pad cell; blank lines skipped; rows that
        cannot be read (bad bytes, overlong lines, malformed quoting) rejected."""
        width, lines, reader = self.width, self.lines, self.reader
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                first, _ = lines.take()
                lines.too_long.clear()
                reject(first, BadValue("(row)", f"malformed CSV ({exc})"))
                continue
            first, text = lines.take()
            if lines.too_long:
                for number in lines.too_long:
                    reject(number, BadValue("1", f"line over {MAX_LINE:,} characters"))
                lines.too_long.clear()
                continue
            bad = _bad_byte(first, text)
            if bad is not None:
                line, column, reason = bad
                reject(line, BadValue(str(column), reason))
                continue
            if len(row) != width:
                if row and (len(row) > 1 or row[0].strip()):
                    reject(
                        reader.line_num,
                        BadValue("(row)", f"expected {width} fields, found {len(row)}"),
                    )
                continue
            row.append("")
            yield row
