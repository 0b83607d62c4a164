"""SOQL text: string and datetime literals, and ``IN (...)`` lists split to fit a GET's URL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from urllib.parse import quote_plus

MAX_QUERY_CHARS = 15_000  # URL-encoded SOQL per GET (Salesforce refuses URIs over 16,384)
_SOQL_ESCAPES = {
    "\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
    "\f": "\\f", '"': '\\"',
}  # fmt: skip


def soql_quote(value: str) -> str:
    """A SOQL string literal: quoted, with backslashes, quotes and control characters escaped."""
    return "'" + "".join(_SOQL_ESCAPES.get(char, char) for char in value) + "'"


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal (whole seconds, UTC; ``>=`` on it never skips a record)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_chunks(values: Sequence[str], fixed: str) -> Iterator[list[str]]:
    """Split values for ``IN (...)`` so the URL-encoded query stays under the URI limit."""
    room = MAX_QUERY_CHARS - len(quote_plus(fixed))
    chunk: list[str] = []
    used = 0
    for value in values:
        cost = len(quote_plus(soql_quote(value) + ", "))
        if chunk and used + cost > room:
            yield chunk
            chunk, used = [], 0
        chunk.append(value)
        used += cost
    if chunk:
        yield chunk
