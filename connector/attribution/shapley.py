"""Shapley values of channels over the sets of channels journeys touched.

Players are the channels; a journey is summarised by its channel *set* ``T`` (order and
repeats ignored). Two coalition values ``v(S)`` are offered:

``conversions`` (default; Zhao, Mahboobi & Bagheri 2018, "Shapley value methods for attribution
modeling in online advertising", the simplified form): ``v(S) = sum of R_T over T subset of S``,
``R_T`` being the conversions (or conversion value) of journeys whose channel set is exactly
``T``. ``v`` is a sum of unanimity games ``R_T * u_T`` and Shapley gives each ``u_T`` equally to
the members of ``T``, so ``phi_c = sum over T containing c of R_T / |T|``: exact for any number
of channels in one pass over the touches. Null journeys do not change it.

``conversion_rate``: ``v(S) = (conversions of journeys with T subset of S) / (journeys with
T subset of S)`` (0 when none), which learns from null journeys too. It is not additive, so the
exact values enumerate every coalition: a subset-sum (zeta) transform over bitmasks of the
channels present, then ``phi_i = sum over S without i of |S|! (n-|S|-1)! / n! (v(S+i) - v(S))``;
exact up to ``exact_max`` present channels (2^n coalitions). Beyond it, ``samples`` random
permutations (Castro, Gomez & Tejada 2009): ``phi_i`` is the mean marginal contribution of
``i`` when added after its predecessors, reported with its standard error
``std / sqrt(samples)`` per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from connector.attribution.journeys import (
    Float,
    Int,
    same_channel_touches,
    segment_sum,
    weighted_count,
)
from connector.attribution.params import ShapleyGame

_BITS = 62  # channel bits per int64 word of a channel-set mask


@dataclass(frozen=True)
class ShapleyFit:
    """Shapley value per channel code; ``stderr`` only when sampled."""

    values: Float
    method: str  # "closed_form" | "exact" | "sampled"
    game: ShapleyGame
    players: int
    stderr: Float | None = None
    permutations: int = 0


def fit_shapley(
    offsets: Int,
    channel: npt.NDArray[np.int32],
    n_channels: int,
    conv: Float,
    null: Float,
    *,
    worth: Float | None = None,
    game: ShapleyGame = "conversions",
    exact_max: int = 15,
    samples: int = 2000,
    seed: int = 0,
) -> ShapleyFit:
    """Shapley values of the chosen game; ``worth`` (default ``conv``) is what journeys earn."""
    earned = conv if worth is None else worth
    if game == "conversions":
        return _closed_form(offsets, channel, n_channels, earned)
    journeys = conv + null
    lengths = np.diff(offsets)
    used = (lengths > 0) & (journeys > 0)
    in_used = np.repeat(used, lengths)
    present = np.bincount(channel[in_used], minlength=n_channels) > 0
    player_of = np.cumsum(present) - 1
    players = int(present.sum())
    words = max(1, -(-players // _BITS))
    masks = _set_masks(offsets, player_of[channel], used, in_used, words)
    sets, inverse = np.unique(masks, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    set_worth = weighted_count(inverse, earned[used], len(sets))
    set_size = weighted_count(inverse, journeys[used], len(sets))
    values = np.zeros(n_channels, dtype=np.float64)
    if players == 0:
        return ShapleyFit(values, "exact", game, 0)
    if players <= exact_max:
        values[present] = _exact_rate(sets[:, 0], set_worth, set_size, players)
        return ShapleyFit(values, "exact", game, players)
    mean, stderr = _sampled_rate(sets, set_worth, set_size, players, samples, seed)
    values[present] = mean
    errors = np.zeros(n_channels, dtype=np.float64)
    errors[present] = stderr
    return ShapleyFit(values, "sampled", game, players, errors, samples)


def _closed_form(
    offsets: Int, channel: npt.NDArray[np.int32], n_channels: int, earned: Float
) -> ShapleyFit:
    repeats = same_channel_touches(offsets, channel, n_channels)
    share = 1.0 / repeats  # sums to the number of distinct channels over a journey
    distinct = segment_sum(share, offsets)
    journey = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    per_touch = earned[journey] * share / distinct[journey]
    values = weighted_count(channel.astype(np.int64), per_touch, n_channels)
    players = int(np.count_nonzero(np.bincount(channel, minlength=n_channels)))
    return ShapleyFit(values, "closed_form", "conversions", players)


def _set_masks(
    offsets: Int,
    player: Int,
    used: npt.NDArray[np.bool_],
    in_used: npt.NDArray[np.bool_],
    words: int,
) -> Int:
    """Per used journey, its channel set as ``words`` int64 bitmasks of ``_BITS`` players.

    Touches of unused journeys lie inside the reduced segments, so their bits are zeroed.
    """
    starts = offsets[:-1][used]
    masks = np.zeros((len(starts), words), dtype=np.int64)
    if len(starts) == 0:
        return masks
    for w in range(words):
        in_word = in_used & ((player // _BITS) == w)
        bits = np.where(in_word, np.left_shift(1, player % _BITS), 0).astype(np.int64)
        masks[:, w] = np.bitwise_or.reduceat(bits, starts)
    return masks


def _rate(worth: Float, size: Float) -> Float:
    return np.divide(worth, size, out=np.zeros_like(worth), where=size > 0)


def _exact_rate(sets: Int, set_worth: Float, set_size: Float, n: int) -> Float:
    coalitions = 1 << n
    worth = weighted_count(sets, set_worth, coalitions)
    size = weighted_count(sets, set_size, coalitions)
    for i in range(n):  # zeta transform: totals over every subset of each coalition
        for table in (worth, size):
            view = table.reshape(-1, 2, 1 << i)
            view[:, 1, :] += view[:, 0, :]
    value = _rate(worth, size)
    every = np.arange(coalitions, dtype=np.int64)
    members = np.zeros(coalitions, dtype=np.int64)
    for i in range(n):
        members += (every >> i) & 1
    fact = math.factorial
    coef = np.array([fact(s) * fact(n - 1 - s) / fact(n) for s in range(n)], dtype=np.float64)
    phi = np.empty(n, dtype=np.float64)
    for i in range(n):
        without = every[((every >> i) & 1) == 0]
        phi[i] = np.sum(coef[members[without]] * (value[without | (1 << i)] - value[without]))
    return phi


def _sampled_rate(
    sets: Int, set_worth: Float, set_size: Float, n: int, samples: int, seed: int
) -> tuple[Float, Float]:
    row, bit = np.nonzero(
        ((sets[:, :, None] >> np.arange(_BITS, dtype=np.int64)[None, None, :]) & 1).reshape(
            len(sets), -1
        )
    )
    member = bit  # word w, bit b -> player w * _BITS + b, already in row-major order
    keep = np.bincount(row, minlength=len(sets)) > 0
    starts = np.searchsorted(row, np.nonzero(keep)[0])
    set_worth, set_size = set_worth[keep], set_size[keep]
    rng = np.random.default_rng(seed)
    total = np.zeros(n, dtype=np.float64)
    total_sq = np.zeros(n, dtype=np.float64)
    rank = np.empty(n, dtype=np.int64)
    for _ in range(samples):
        order = rng.permutation(n)
        rank[order] = np.arange(n)
        completed_at = np.maximum.reduceat(rank[member], starts)
        worth = np.cumsum(weighted_count(completed_at, set_worth, n))
        size = np.cumsum(weighted_count(completed_at, set_size, n))
        marginal = np.diff(_rate(worth, size), prepend=0.0)[rank]
        total += marginal
        total_sq += marginal * marginal
    mean = total / samples
    variance = np.maximum(total_sq - samples * mean * mean, 0.0) / (samples - 1)
    return mean, np.sqrt(variance / samples)
