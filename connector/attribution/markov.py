"""Markov-chain removal effects, computed exactly from the absorbing chain (no simulation).

States: ``start``, one state per channel (first order) or per window of ``k`` consecutive
channels (k-order; a journey shorter than ``k`` is one state holding its whole path, as in
ChannelAttribution), and the absorbing ``conversion`` and ``null``. Every journey with touches
adds, with weight ``conversions + nulls``, ``start -> first state`` and each consecutive pair
of states (a repeated state is a kept self-transition: it changes no absorption probability),
then ``last state -> conversion`` weighted by its conversions and ``last state -> null`` by its
nulls. With ``N`` the transient transition counts and ``out`` each state's total outgoing
count, the conversion probabilities ``x`` solve ``(diag(out) - N) x = conversions_into`` (the
row-scaled form of ``(I - Q) x = r``); ``P(conversion) = x[start]``. Small chains are solved
directly (NumPy); large k-order chains with GMRES to a relative residual of 1e-12 (a sparse LU
fills in badly there), falling back to a sparse LU if GMRES does not get that far.

The removal effect of channel ``c`` is ``1 - P(conversion with c redirected to null) /
P(conversion)``: the states holding ``c`` are dropped from the system (they absorb into null).
With a conversion value per journey, the same system with the value flowing into conversion
gives the value removal effects (ChannelAttribution's ``removal_effects_conversion_value``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from connector.attribution.journeys import Float, Int, weighted_count

_DENSE_STATES = 300  # solve with numpy up to this many states, scipy.sparse above
_RESIDUAL = 1e-12  # relative residual accepted from the iterative sparse solver
_MAX_ITERATIONS = 200  # GMRES restarts before falling back to a sparse LU
_DENSE_CODES = 1 << 24  # relabel window codes with a lookup table below this code range


@dataclass(frozen=True)
class MarkovFit:
    """Removal effects per channel code (0 for channels never seen) and the fitted chain."""

    removal_effects: Float
    value_removal_effects: Float | None
    conversion_probability: float
    order: int
    states: int


@dataclass(frozen=True)
class _Chain:
    """States of every touch window: ``sequence`` per journey via ``offsets``; ids from 1."""

    offsets: Int
    sequence: Int
    holds: npt.NDArray[np.bool_]  # (states + 1, n_channels): state contains channel
    states: int


def _first_order_chain(offsets: Int, channel: npt.NDArray[np.int32], n_channels: int) -> _Chain:
    holds = np.zeros((n_channels + 1, n_channels), dtype=np.bool_)
    holds[np.arange(1, n_channels + 1), np.arange(n_channels)] = True
    return _Chain(offsets, channel.astype(np.int64) + 1, holds, n_channels)


def _window_chain(
    offsets: Int, channel: npt.NDArray[np.int32], n_channels: int, order: int
) -> _Chain:
    base = n_channels + 1  # digit n_channels = "no touch" padding of a short journey
    if base**order >= 2**62:
        raise ValueError(f"Markov order {order} is too high for {n_channels} channels")
    lengths = np.diff(offsets)
    journey = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    position = np.arange(len(channel), dtype=np.int64) - offsets[:-1][journey]
    ends = np.nonzero(position >= np.minimum(order, lengths)[journey] - 1)[0]
    code = np.zeros(len(ends), dtype=np.int64)
    for lag in range(order - 1, -1, -1):
        digit = np.where(position[ends] >= lag, channel[np.maximum(ends - lag, 0)], n_channels)
        code = code * base + digit
    if base**order <= _DENSE_CODES:
        seen = np.zeros(base**order, dtype=np.bool_)
        seen[code] = True
        codes = np.nonzero(seen)[0]
        label = np.cumsum(seen) - 1
        ids = label[code]
    else:
        codes, ids = np.unique(code, return_inverse=True)
    windows = np.zeros_like(offsets)
    np.cumsum(lengths - np.minimum(order, lengths) + (lengths > 0), out=windows[1:])
    digits = (codes[:, None] // base ** np.arange(order, dtype=np.int64)[None, :]) % base
    holds = np.zeros((len(codes) + 1, n_channels + 1), dtype=np.bool_)
    rows = np.repeat(np.arange(1, len(codes) + 1), order)
    holds[rows, digits.ravel()] = True
    return _Chain(windows, ids.astype(np.int64) + 1, holds[:, :n_channels], len(codes))


def _counts(
    chain: _Chain, conv: Float, null: Float, value: Float | None
) -> tuple[Any, Float, Float, Float | None]:
    """Transient transition counts ``N`` (dense or CSR), ``out``, flows into conversion/value."""
    size = chain.states + 1
    lengths = np.diff(chain.offsets)
    seen = lengths > 0
    first = chain.offsets[:-1][seen]
    last = chain.offsets[1:][seen] - 1
    flow = (conv + null)[seen]
    inner = np.ones(len(chain.sequence), dtype=np.bool_)
    inner[last] = False
    inner_idx = np.nonzero(inner)[0]
    journey = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    src = np.concatenate([np.zeros(len(first), dtype=np.int64), chain.sequence[inner_idx]])
    dst = np.concatenate([chain.sequence[first], chain.sequence[inner_idx + 1]])
    weight = np.concatenate([flow, (conv + null)[journey[inner_idx]]])
    ends = chain.sequence[last]
    into_conv = weighted_count(ends, conv[seen], size)
    into_null = weighted_count(ends, null[seen], size)
    into_value = None if value is None else weighted_count(ends, value[seen], size)
    out = weighted_count(src, weight, size) + into_conv + into_null
    if size <= _DENSE_STATES:
        n = weighted_count(src * size + dst, weight, size * size)
        return n.reshape(size, size), out, into_conv, into_value
    from scipy import sparse

    return sparse.csr_matrix((weight, (src, dst)), shape=(size, size)), out, into_conv, into_value


def _solve(n: Any, out: Float, rhs: Float, keep: npt.NDArray[np.bool_]) -> Float:
    """Absorption values from ``start`` (state 0) over the states in ``keep``."""
    idx = np.nonzero(keep)[0]
    if len(idx) == 0 or not keep[0]:
        return np.zeros(rhs.shape[1], dtype=np.float64)
    if isinstance(n, np.ndarray):
        a = np.diag(out[idx]) - n[np.ix_(idx, idx)]
        return np.asarray(np.linalg.solve(a, rhs[idx])[0], dtype=np.float64)
    return _solve_sparse(n[idx][:, idx], out[idx], rhs[idx])


def _solve_sparse(n: Any, out: Float, rhs: Float) -> Float:
    """``(I - Q) x = r`` with ``Q = N / out``: GMRES to a relative residual of ``_RESIDUAL``,
    a sparse LU when it does not get there (LU fill-in explodes on large k-order chains)."""
    from scipy import sparse
    from scipy.sparse.linalg import gmres, splu

    q = sparse.diags(1.0 / out) @ n
    a = (sparse.identity(len(out), format="csr") - q).tocsr()
    r = rhs / out[:, None]
    result = np.empty(rhs.shape[1], dtype=np.float64)
    for col in range(rhs.shape[1]):
        b = r[:, col]
        x, _ = gmres(a, b, rtol=_RESIDUAL / 10, atol=0.0, restart=50, maxiter=_MAX_ITERATIONS)
        if np.abs(a @ x - b).max() > _RESIDUAL * max(np.abs(b).max(), 1e-300):
            x = splu(a.tocsc()).solve(b)
        result[col] = x[0]
    return result


def fit_markov(
    offsets: Int,
    channel: npt.NDArray[np.int32],
    n_channels: int,
    conv: Float,
    null: Float,
    *,
    order: int = 1,
    value: Float | None = None,
) -> MarkovFit:
    """Exact removal effects of a k-order chain fitted on weighted paths.

    ``conv`` / ``null`` (and optionally ``value``) are per-journey weights: ``converted`` and
    ``~converted`` for :class:`~connector.attribution.Journeys`, the table's counts for paths.
    """
    if order == 1:
        chain = _first_order_chain(offsets, channel, n_channels)
    else:
        chain = _window_chain(offsets, channel, n_channels, order)
    n, out, into_conv, into_value = _counts(chain, conv, null, value)
    rhs = into_conv[:, None] if into_value is None else np.column_stack([into_conv, into_value])
    active = out > 0
    base = _solve(n, out, rhs, active)
    effects = np.zeros((n_channels, rhs.shape[1]), dtype=np.float64)
    for c in np.nonzero(chain.holds[active].any(axis=0))[0]:
        without = _solve(n, out, rhs, active & ~chain.holds[:, c])
        ratio = np.divide(without, base, out=np.ones_like(base), where=base > 0)
        effects[c] = np.where(base > 0, 1.0 - ratio, 0.0)
    effects = np.clip(effects, 0.0, 1.0)
    return MarkovFit(
        removal_effects=effects[:, 0],
        value_removal_effects=None if into_value is None else effects[:, 1],
        conversion_probability=float(base[0]),
        order=order,
        states=chain.states,
    )
