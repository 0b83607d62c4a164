"""The keys a load has given (:class:`KeyFilter`), for :class:`connector.store.staged.Staged`."""

from __future__ import annotations

import tempfile
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np

FILTER_BITS = 1 << 28  # 32 MiB
SUSPECTS_READ = 8 << 20  # bytes of key hashes read at a time
_MASK = np.uint64(FILTER_BITS - 1)


class KeyFilter:
    """The keys a load has given, to find the rows that repeat one without reading the table.

    A Bloom filter (2 probes into :data:`FILTER_BITS` bits: fixed memory) flags every row that
    repeats a key given before and, at 10M distinct keys, about 0.5% of the others. Every key's
    hash also goes, in order, to a temporary file (8 bytes a row) that :meth:`suspects` reads.
    """

    def __init__(self) -> None:
        self.bits = np.zeros(FILTER_BITS // 8, dtype=np.uint8)
        self.hashes = tempfile.TemporaryFile()
        # the file goes with the filter (or with close(), this, run once), however a load ends
        self.close = weakref.finalize(self, self.hashes.close)
        self.flagged: list[Any] = []  # the hashes of the rows flagged, per batch

    def maybe_seen(self, keys: Iterable[Any], n: int) -> Any:
        """The positions in ``keys`` (``n`` hashable values) that may repeat one given before
        (in this call or an earlier one), then remembers them all."""
        hashes = np.fromiter(map(hash, keys), dtype=np.int64, count=n)
        self.hashes.write(hashes.tobytes())
        unsigned = hashes.view(np.uint64)
        probes = [unsigned & _MASK, (unsigned >> np.uint64(32)) & _MASK]
        seen = np.ones(n, dtype=bool)
        for probe in probes:
            seen &= (self.bits[probe >> np.uint64(3)] >> (probe & np.uint64(7))) & 1 == 1
        _, first = np.unique(hashes, return_index=True)  # repeats within the batch
        again = np.ones(n, dtype=bool)
        again[first] = False
        for probe in probes:
            bit = np.left_shift(1, probe & np.uint64(7)).astype(np.uint8)
            np.bitwise_or.at(self.bits, probe >> np.uint64(3), bit)
        found = np.flatnonzero(seen | again)
        self.flagged.append(hashes[found])
        return found

    def suspects(self) -> Any:
        """The positions (from 0, in the order given) of every row whose key's hash is a flagged
        row's: all the rows of the keys repeated, and a few more."""
        wanted: Any = np.unique(np.concatenate(self.flagged)) if self.flagged else []
        found, start = [np.zeros(0, dtype=np.int64)], 0
        self.hashes.seek(0)
        while block := self.hashes.read(SUSPECTS_READ):
            hashes = np.frombuffer(block, dtype=np.int64)
            found.append(np.flatnonzero(np.isin(hashes, wanted)) + start)
            start += len(hashes)
        return np.concatenate(found)
