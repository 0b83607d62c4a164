"""A ChannelAttribution-style path table read into arrays: ``read_path_table(file, sep)``.

Input: CSV with a header holding ``path`` (channels joined by ``sep``, spaces around them
ignored, empty steps skipped, as ChannelAttribution does) and ``total_conversions``; optional
``total_conversion_value`` and ``total_null`` (absent or blank = 0); other columns are ignored.
The delimiter is ``,`` or, when the header uses one, ``;`` / tab / ``|``.

Parsing works on the file's bytes with array operations and no per-row Python: newline,
delimiter and separator positions give every field and step; numbers are decoded from their
digits; channel names are packed into 64-bit words and matched by key (then verified byte for
byte). Anything unusual (quotes, lone CR line ends, blank lines, exponents, errors) sends the file
through the :mod:`csv` module instead, which also names the bad line and column.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from connector.attribution.journeys import Float, Int, weighted_count
from connector.kernel.errors import ConfigError

PATH, CONV, VALUE, NULL = "path", "total_conversions", "total_conversion_value", "total_null"
_DELIMITERS = (",", ";", "\t", "|")
_LONGEST_NAME = 200  # bytes; longer channel names go through the csv path


@dataclass(frozen=True)
class PathTable:
    """Paths as touch arrays with their counts: one per row from the array scanner, one per
    distinct path (counts summed) from the csv-module reader."""

    channels: tuple[str, ...]
    offsets: npt.NDArray[np.int64]
    channel: npt.NDArray[np.int32]
    conversions: Float
    value: Float
    null: Float


def read_path_table(file: Path, sep: str = ">") -> PathTable:
    """Parse a ChannelAttribution path table; ConfigError names file, line and column."""
    if not sep or sep.isspace():
        raise ConfigError("the path separator must be a visible character such as '>'")
    data, size = _read(file)
    buf = np.frombuffer(data, dtype=np.uint8)
    if np.any(buf[:size] >= 128):  # only non-ASCII files need the decoder to check UTF-8
        _decode(file, data, 0, size)
    newline = data.find(b"\n", 0, size)
    header_end = size if newline < 0 else newline
    layout = _header(file, _decode(file, data, 0, header_end).rstrip("\r"), sep)
    # CRLF line ends (Excel, Python's csv module) stay on the fast path; a lone CR does not.
    crlf = data.count(b"\r\n", newline, size)
    plain = newline >= 0 and data.find(b'"', newline, size) < 0
    plain = plain and data.count(b"\r", newline, size) == crlf
    table = _scan(file, buf, newline + 1, size, layout, sep, crlf > 0) if plain else None
    if table is None:
        body = _decode(file, data, header_end + 1, size)
        body = body.replace("\r\n", "\n").replace("\r", "\n") if "\r" in body else body
        paths, numbers = _csv_columns(file, body, layout)
        table = _build(file, paths, numbers, sep)
    return table


def _read(file: Path) -> tuple[bytearray, int]:
    """The file's bytes followed by zero padding (room for a final newline and name packing)."""
    try:
        with open(file, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = bytearray(size + _LONGEST_NAME + 16)
            size = handle.readinto(memoryview(data)[:size]) or 0
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the path table ({exc.strerror})") from exc
    return data, size


def _decode(file: Path, data: bytearray, start: int, end: int) -> str:
    try:
        return bytes(data[start:end]).decode("utf-8-sig" if start == 0 else "utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, start + exc.start) + 1
        raise ConfigError(f"{file}:{line}: not UTF-8 text (byte {start + exc.start})") from exc


@dataclass(frozen=True)
class _Layout:
    delimiter: str
    width: int  # fields per row
    columns: dict[str, int]  # known column -> field index


def _header(file: Path, header: str, sep: str) -> _Layout:
    usable = [d for d in _DELIMITERS if d not in sep]
    delimiter = next((d for d in usable if d in header), ",")
    names = (
        [
            c.strip().strip('"').strip().lower()
            for c in next(csv.reader([header], delimiter=delimiter))
        ]
        if header.strip()
        else []
    )
    found = ", ".join(repr(n) for n in names) or "nothing"
    for required in (PATH, CONV):
        if required not in names:
            raise ConfigError(
                f"{file}:1: missing column {required!r} in the header (found {found})"
            )
    wanted = (PATH, CONV, VALUE, NULL)
    for name in wanted:
        if names.count(name) > 1:
            raise ConfigError(f"{file}:1: column {name!r} appears twice in the header")
    columns = {name: names.index(name) for name in wanted if name in names}
    return _Layout(delimiter, len(names), columns)


def _scan(
    file: Path,
    buf: npt.NDArray[np.uint8],
    begin: int,
    size: int,
    layout: _Layout,
    sep: str,
    crlf: bool = False,
) -> PathTable | None:
    """Parse a plain body (no quotes, ``\\n`` or ``\\r\\n`` line ends, plain decimals) with
    array operations.

    ``buf[begin:size]`` is the body, followed by zero padding. Returns None whenever anything
    is unusual, so that :func:`_csv_columns` handles the file and names the bad line and column.
    """
    sep_bytes = sep.encode()
    if len(sep_bytes) != 1 or size <= begin:
        return None
    if buf[size - 1] != 10:
        if crlf:
            buf[size] = 13
            size += 1
        buf[size] = 10
        size += 1
    body = buf[begin:size]
    newlines = np.flatnonzero(body == 10) + begin
    starts = np.concatenate([[begin], newlines[:-1] + 1])
    ends = newlines - 1 if crlf else newlines  # where each line's last field ends
    if crlf and np.any(buf[ends] != 13):
        return None
    if np.any(ends == starts):
        return None  # blank lines
    rows, width = len(ends), layout.width
    delims = np.flatnonzero(body == ord(layout.delimiter)) + begin
    if len(delims) != rows * (width - 1):
        return None
    fields = np.diff(np.searchsorted(delims, ends), prepend=0) + 1
    if np.any(fields != width):
        return None
    grid = delims.reshape(rows, width - 1)

    def span(k: int) -> tuple[Int, Int]:
        return (starts if k == 0 else grid[:, k - 1] + 1), (ends if k == width - 1 else grid[:, k])

    numbers: dict[str, Float] = {}
    for name in (CONV, VALUE, NULL):
        if name in layout.columns:
            parsed = _decimals(buf, *span(layout.columns[name]))
            if parsed is None:
                return None
            numbers[name] = parsed
    tokens = _tokens(buf, *span(layout.columns[PATH]), sep_bytes[0])
    if tokens is None:
        return None
    per_row, code, names = tokens
    if np.any(per_row == 0):
        line = int(np.argmax(per_row == 0)) + 2
        raise ConfigError(f"{file}:{line}: column {PATH!r} holds no channel")
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(per_row, out=offsets[1:])
    zeros = np.zeros(rows, dtype=np.float64)
    return PathTable(
        channels=names,
        offsets=offsets,
        channel=code,
        conversions=numbers[CONV],
        value=numbers.get(VALUE, zeros),
        null=numbers.get(NULL, zeros),
    )


def _decimals(buf: npt.NDArray[np.uint8], start: Int, end: Int) -> Float | None:
    """Plain decimals (``12``, ``0.5``, ``3.``) of up to 15 characters; None otherwise.

    The digits form an exact integer mantissa divided by an exact power of ten: one correctly
    rounded division, hence the same double as ``float(text)``.
    """
    lengths = end - start
    if lengths.min() < 1 or lengths.max() > 15:
        return None
    mantissa = np.zeros(len(start), dtype=np.int64)
    dots = np.zeros(len(start), dtype=np.int64)
    decimals = np.zeros(len(start), dtype=np.int64)
    for k in range(int(lengths.max())):
        inside = lengths > k
        char = buf[np.where(inside, start + k, 0)].astype(np.int64)
        digit = inside & (char >= 48) & (char <= 57)
        dot = inside & (char == 46)
        if np.any(inside & ~digit & ~dot):
            return None
        mantissa = np.where(digit, mantissa * 10 + char - 48, mantissa)
        decimals += digit & (dots > 0)
        dots += dot
    if np.any(dots > 1) or np.any(dots == lengths):
        return None
    result: Float = mantissa / 10.0**decimals
    return result


def _tokens(
    buf: npt.NDArray[np.uint8], start: Int, end: Int, sep: int
) -> tuple[Int, npt.NDArray[np.int32], tuple[str, ...]] | None:
    """Channel steps of every path: (steps per row, channel code per step, channel names).

    Steps are trimmed of spaces and tabs, and empty ones dropped.
    """
    rows = len(start)
    marks = np.flatnonzero(buf[start[0] : end[-1]] == sep) + start[0]
    inside = np.searchsorted(marks, end) - np.searchsorted(marks, start)
    if inside.sum() != len(marks):  # the separator also occurs in other columns
        row = np.searchsorted(end, marks)
        marks = marks[(row < rows) & (marks >= start[np.minimum(row, rows - 1)])]
    steps = inside + 1
    bounds = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(steps, out=bounds[1:])
    opens_row = np.zeros(bounds[-1], dtype=np.bool_)
    opens_row[bounds[:-1]] = True
    closes_row = np.append(opens_row[1:], True)
    begin = np.empty(bounds[-1], dtype=np.int64)
    finish = np.empty(bounds[-1], dtype=np.int64)
    begin[opens_row], begin[~opens_row] = start, marks + 1
    finish[closes_row], finish[~closes_row] = end, marks
    _trim(buf, begin, finish)
    length = finish - begin
    empty = np.flatnonzero(length == 0)
    if len(empty):
        steps -= np.bincount(np.searchsorted(bounds, empty, "right") - 1, minlength=rows)
        begin, length = np.delete(begin, empty), np.delete(length, empty)
    named = _name_codes(buf, begin, length)
    if named is None:
        return None
    return steps, *named


def _trim(buf: npt.NDArray[np.uint8], begin: Int, finish: Int) -> None:
    """Move step bounds past leading and trailing spaces and tabs, in place."""
    blank = np.zeros(256, dtype=np.bool_)
    blank[[32, 9]] = True
    while np.any(lead := (begin < finish) & blank[buf[begin]]):
        begin += lead
    while np.any(tail := (begin < finish) & blank[buf[np.maximum(finish - 1, 0)]]):
        finish -= tail


def _name_codes(
    buf: npt.NDArray[np.uint8], begin: Int, length: Int
) -> tuple[npt.NDArray[np.int32], tuple[str, ...]] | None:
    """Channel code per step (by first appearance) and the names; None if unsure.

    Each step's bytes are packed in little-endian 64-bit words; the key is the word itself for
    names up to 8 bytes, a polynomial of the words beyond. The few distinct keys are found on
    a prefix and completed by lookup, then every step is compared with the first step of its
    key (length and words), so a key collision sends the file to the csv path instead.
    """
    longest = int(length.max(initial=0))
    if longest > _LONGEST_NAME:
        return None
    packed = _packed(buf, begin, length, max(1, -(-longest // 8)))
    key = packed[:, 0].copy()
    for w in range(1, packed.shape[1]):
        key = key * np.uint64(1099511628211) + packed[:, w]
    distinct = np.unique(key[:4096])
    while len(key):
        slot = np.minimum(np.searchsorted(distinct, key), len(distinct) - 1)
        unseen = distinct[slot] != key
        if not unseen.any():
            break
        distinct = np.union1d(distinct, key[unseen])
    else:
        slot = np.zeros(0, dtype=np.int64)
    first = np.empty(len(distinct), dtype=np.int64)
    first[slot[::-1]] = np.arange(len(key) - 1, -1, -1)  # the last write is the smallest
    exemplar = first[slot]
    if not np.array_equal(length[exemplar], length):
        return None
    if packed.shape[1] > 1 and not np.array_equal(packed[exemplar], packed):
        return None
    order = np.argsort(first)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    names = tuple(buf[begin[i] : begin[i] + length[i]].tobytes().decode() for i in first[order])
    return rank[slot], names


_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


def _packed(buf: npt.NDArray[np.uint8], begin: Int, length: Int, words: int) -> Any:
    """(steps, words) uint64: each step's bytes, zero-padded (``buf`` has padding at its end)."""
    windows = as_strided(buf, shape=(len(buf) - 7, 8), strides=(1, 1), writeable=False)
    packed = np.empty((len(begin), words), dtype=np.uint64)
    for w in range(words):
        word = windows[begin + 8 * w].view("<u8")[:, 0]
        packed[:, w] = word & _BYTE_MASKS[np.clip(length - 8 * w, 0, 8)]
    return packed


def _csv_columns(file: Path, body: str, layout: _Layout) -> tuple[list[str], dict[str, Float]]:
    """Row by row with the csv module: slower, and precise about what is wrong where."""
    width, columns = layout.width, layout.columns
    reader = csv.reader(io.StringIO(body), delimiter=layout.delimiter)
    paths: list[str] = []
    numeric = [(n, columns[n]) for n in (CONV, VALUE, NULL) if n in columns]
    values: dict[str, list[float]] = {n: [] for n, _ in numeric}
    try:
        for row in reader:
            line = reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                raise ConfigError(f"{file}:{line}: expected {width} fields, found {len(row)}")
            paths.append(row[columns[PATH]])
            for name, col in numeric:
                values[name].append(_number(file, line, name, col, row[col]))
    except csv.Error as exc:
        raise ConfigError(f"{file}:{reader.line_num + 1}: {exc}") from exc
    return paths, {n: np.array(v, dtype=np.float64) for n, v in values.items()}


def _number(file: Path, line: int, name: str, col: int, cell: str) -> float:
    where = f"{file}:{line}: column {col + 1} ({name})"
    if not cell.strip():
        if name == CONV:
            raise ConfigError(f"{where}: empty; give a number of conversions")
        return 0.0
    try:
        number = float(cell)
    except ValueError:
        raise ConfigError(f"{where}: {cell.strip()!r} is not a number") from None
    if not np.isfinite(number) or number < 0:
        raise ConfigError(f"{where}: {cell.strip()!r} must be a finite number >= 0")
    return number


def _build(file: Path, paths: list[str], numbers: dict[str, Float], sep: str) -> PathTable:
    distinct: dict[str, int] = {}
    row_path = np.fromiter(
        (distinct.setdefault(p, len(distinct)) for p in paths), dtype=np.int64, count=len(paths)
    )
    names: dict[str, int] = {}
    steps = [[s.strip(" \t") for s in p.split(sep)] for p in distinct]
    codes = [names.setdefault(s, len(names)) if s else -1 for path in steps for s in path]
    code = np.array(codes, dtype=np.int32)
    raw_lengths = np.fromiter((len(s) for s in steps), dtype=np.int64, count=len(steps))
    step_path = np.repeat(np.arange(len(steps), dtype=np.int64), raw_lengths)
    real = code >= 0
    lengths = np.bincount(step_path[real], minlength=len(steps))
    if np.any(lengths == 0):
        empty = int(np.nonzero(lengths == 0)[0][0])
        line = int(np.argmax(row_path == empty)) + 2
        raise ConfigError(f"{file}:{line}: column {PATH!r} holds no channel")
    offsets = np.zeros(len(steps) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    zeros = np.zeros(len(paths), dtype=np.float64)
    size = len(steps)
    return PathTable(
        channels=tuple(names),
        offsets=offsets,
        channel=code[real],
        conversions=weighted_count(row_path, numbers[CONV], size),
        value=weighted_count(row_path, numbers.get(VALUE, zeros), size),
        null=weighted_count(row_path, numbers.get(NULL, zeros), size),
    )
