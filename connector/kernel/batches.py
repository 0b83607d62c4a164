"""Cutting a stream into batches: the one helper every reader and writer uses."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items (the last may be shorter), lazily."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
