"""The array container every attribution model reads, and the index helpers they share.

A :class:`Journeys` holds ``n`` journeys laid end to end: the touches of journey ``j`` are
``offsets[j]:offsets[j + 1]``, in time order (the array order is authoritative, so ties in
``ts`` keep the order the caller gave them). Nothing here loops over journeys in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]

# A dense (journey x channel) count table is used while it stays below this many cells;
# past it, the (journey, channel) pairs are counted by sorting instead.
_DENSE_CELLS = 30_000_000


@dataclass(frozen=True, eq=False)
class Journeys:
    """Touches of many journeys as flat NumPy arrays (see the module docstring)."""

    offsets: npt.NDArray[np.int64]  # (n + 1,) touch bounds of each journey
    channel: npt.NDArray[np.int32]  # channel code per touch
    ts: npt.NDArray[np.float64]  # touch time, epoch seconds
    end_ts: npt.NDArray[np.float64]  # per journey: milestone time (close / conversion)
    lead_pos: npt.NDArray[np.int64]  # per journey: absolute index of the lead touch, or -1
    opp_pos: npt.NDArray[np.int64]  # per journey: absolute index of the opportunity touch, or -1
    converted: npt.NDArray[np.bool_]  # per journey: converted, or a null path
    channels: tuple[str, ...]  # code -> channel name
    direct: int = -1  # code of the "Direct" channel, -1 if none

    @property
    def n_journeys(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_touches(self) -> int:
        return len(self.channel)

    @cached_property
    def lengths(self) -> Int:
        """Touches per journey."""
        return np.diff(self.offsets)

    @cached_property
    def journey_of_touch(self) -> Int:
        """Index of the journey each touch belongs to."""
        return np.repeat(np.arange(self.n_journeys, dtype=np.int64), self.lengths)

    def validate(self) -> None:
        """Raise ValueError when the arrays do not describe journeys consistently."""
        n, t = self.n_journeys, self.n_touches
        if len(self.offsets) == 0 or self.offsets[0] != 0 or self.offsets[-1] != t:
            raise ValueError("offsets must start at 0 and end at the number of touches")
        if np.any(self.lengths < 0):
            raise ValueError("offsets must be non-decreasing")
        if len(self.ts) != t:
            raise ValueError(f"ts has {len(self.ts)} entries for {t} touches")
        for name in ("end_ts", "lead_pos", "opp_pos", "converted"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} journeys")
        if t and (self.channel.min() < 0 or self.channel.max() >= len(self.channels)):
            raise ValueError(f"channel codes must lie in [0, {len(self.channels)})")
        if not -1 <= self.direct < max(len(self.channels), 1):
            raise ValueError(f"direct code {self.direct} is not a channel code")
        for name in ("lead_pos", "opp_pos"):
            pos = getattr(self, name)
            given = pos >= 0
            inside = (pos >= self.offsets[:-1]) & (pos < self.offsets[1:])
            if np.any(given & ~inside) or np.any(pos < -1):
                raise ValueError(f"{name} must be -1 or the index of a touch of the same journey")


def journeys_from_lists(
    paths: Sequence[Sequence[str]],
    converted: Sequence[bool] | None = None,
    *,
    ts: Sequence[Sequence[float]] | None = None,
    end_ts: Sequence[float] | None = None,
    lead: Sequence[int] | None = None,
    opp: Sequence[int] | None = None,
    direct: str | None = "Direct",
) -> Journeys:
    """Build :class:`Journeys` from small Python lists (tests, examples, small reports).

    ``lead`` / ``opp`` give positions *within* each journey (``-1`` = none); channel codes follow
    first appearance; ``direct`` names the direct channel if present.
    """
    names: dict[str, int] = {}
    codes = [names.setdefault(c, len(names)) for path in paths for c in path]
    lengths = [len(p) for p in paths]
    offsets = np.zeros(len(paths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n = len(paths)

    def absolute(rel: Sequence[int] | None) -> Int:
        if rel is None:
            return np.full(n, -1, dtype=np.int64)
        r = np.asarray(rel, dtype=np.int64)
        return np.where(r >= 0, offsets[:-1] + r, -1)

    flat_ts = [float(x) for row in ts for x in row] if ts is not None else [0.0] * len(codes)
    channels = tuple(names)
    return Journeys(
        offsets=offsets,
        channel=np.asarray(codes, dtype=np.int32),
        ts=np.asarray(flat_ts, dtype=np.float64),
        end_ts=np.asarray(end_ts if end_ts is not None else [0.0] * n, dtype=np.float64),
        lead_pos=absolute(lead),
        opp_pos=absolute(opp),
        converted=np.asarray(converted if converted is not None else [True] * n, dtype=np.bool_),
        channels=channels,
        direct=channels.index(direct) if direct in names else -1,
    )


def weighted_count(index: Int, weights: Float, size: int) -> Float:
    """``np.bincount`` with weights, typed as the float array it returns."""
    return np.bincount(index, weights=weights, minlength=size).astype(np.float64, copy=False)


def segment_sum(values: npt.NDArray[np.float64], offsets: Int) -> Float:
    """Sum of ``values`` over each journey; 0 for a journey without touches."""
    out = np.zeros(len(offsets) - 1, dtype=np.float64)
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    if values.size:
        out[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty])
    return out


def segment_max(values: npt.NDArray[np.float64], offsets: Int, empty: float) -> Float:
    """Maximum of ``values`` over each journey; ``empty`` for a journey without touches."""
    out = np.full(len(offsets) - 1, empty, dtype=np.float64)
    nonempty = np.diff(offsets) > 0
    if values.size:
        out[nonempty] = np.maximum.reduceat(values, offsets[:-1][nonempty])
    return out


def same_channel_touches(offsets: Int, channel: npt.NDArray[np.int32], n_channels: int) -> Int:
    """For each touch, how many touches of its journey share its channel (itself included)."""
    n = len(offsets) - 1
    if channel.size == 0:
        return np.zeros(0, dtype=np.int64)
    journey = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    key = journey * n_channels + channel
    if n * n_channels <= _DENSE_CELLS:
        return np.asarray(np.bincount(key, minlength=n * n_channels)[key], dtype=np.int64)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return np.asarray(counts[inverse], dtype=np.int64)
