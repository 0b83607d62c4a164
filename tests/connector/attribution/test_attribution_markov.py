"""Exact Markov removal effects: hand-computed chains, an independent solver, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from connector.attribution import (
    ModelParams,
    credit,
    fit_channel_weights,
    fit_markov,
    journeys_from_lists,
    markov,
)


def table(rows: list[tuple[str, float, float]]) -> tuple:
    """(offsets, channel, n_channels, conv, null) of ``"A>B"``-style rows, codes A=0, B=1..."""
    paths = [r[0].split(">") for r in rows]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in paths])]).astype(np.int64)
    channel = np.array([ord(c) - ord("A") for p in paths for c in p], dtype=np.int32)
    conv = np.array([r[1] for r in rows], dtype=np.float64)
    null = np.array([r[2] for r in rows], dtype=np.float64)
    return offsets, channel, int(channel.max()) + 1, conv, null


def test_first_order_by_hand() -> None:
    # start->A 2, start->B 2; A->B 1, A->null 1; B->conv 2, B->null 1.
    # x_B = 2/3, x_A = 1/2 * 2/3 = 1/3, P = (1/3 + 2/3) / 2 = 1/2.
    # Without A: P = 1/2 * 2/3 = 1/3 -> RE_A = 1/3. Without B: P = 0 -> RE_B = 1.
    fit = fit_markov(*table([("A>B", 1, 0), ("A", 0, 1), ("B", 1, 1)]))
    assert fit.conversion_probability == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(fit.removal_effects, [1 / 3, 1], atol=1e-12)
    assert fit.value_removal_effects is None


def test_value_removal_effects_weigh_conversions_by_value() -> None:
    # B>A converts with value 300, B converts with value 0: A carries all the value.
    offsets, channel, n, conv, null = table([("B>A", 1, 0), ("A", 0, 1), ("B", 1, 1)])
    fit = fit_markov(offsets, channel, n, conv, null, value=np.array([300.0, 0.0, 0.0]))
    # states: start->B 3, start->A 1; B->A 1, B->conv 1, B->null 1; A->conv 1, A->null 1.
    # conversions: x_A = 1/2, x_B = 1/3 * 1/2 + 1/3 = 1/2, P = 3/4 * 1/2 + 1/4 * 1/2 = 1/2.
    # no A: x_B = 1/3, P = 1/4 -> RE_A = 1/2; no B: P = 1/4 * 1/2 = 1/8 -> RE_B = 3/4.
    np.testing.assert_allclose(fit.removal_effects, [1 / 2, 3 / 4], atol=1e-12)
    # value: from A 300 over 2 exits = 150; from B 0. v_A = 150, v_B = 1/3 * 150 = 50,
    # V = 3/4 * 50 + 1/4 * 150 = 75. no A: 0 -> 1. no B: 1/4 * 150 = 37.5 -> 1/2.
    assert fit.value_removal_effects is not None
    np.testing.assert_allclose(fit.value_removal_effects, [1, 1 / 2], atol=1e-12)


def test_repeated_channel_self_transitions_change_nothing() -> None:
    plain = fit_markov(*table([("A>B", 1, 0), ("A", 0, 1), ("B>C", 1, 1)]))
    repeated = fit_markov(*table([("A>A>B", 1, 0), ("A>A>A", 0, 1), ("B>C>C", 1, 1)]))
    np.testing.assert_allclose(plain.removal_effects, repeated.removal_effects, atol=1e-12)
    assert plain.conversion_probability == pytest.approx(repeated.conversion_probability)


def test_k_order_by_hand() -> None:
    rows = [("A>B>C", 1, 0), ("A>C", 0, 1), ("B", 1, 0)]
    # order 2 states (A,B) (B,C) (A,C) (-,B): P = 1/3 + 0 + 1/3 = 2/3;
    # without A: 1/3 -> 1/2; without B: 0 -> 1; without C: 1/3 -> 1/2.
    second = fit_markov(*table(rows), order=2)
    assert second.states == 4
    assert second.conversion_probability == pytest.approx(2 / 3, abs=1e-12)
    np.testing.assert_allclose(second.removal_effects, [1 / 2, 1, 1 / 2], atol=1e-12)
    # first order: x_C = 1/2, x_B = 3/4, x_A = 5/8, P = 2/3; without A: 1/4 -> 5/8.
    first = fit_markov(*table(rows))
    assert first.conversion_probability == pytest.approx(2 / 3, abs=1e-12)
    assert first.removal_effects[0] == pytest.approx(5 / 8, abs=1e-12)


def independent_first_order(offsets, channel, n, conv, null) -> tuple[float, np.ndarray]:
    """Dense fundamental-matrix solution built with plain loops (no shared code)."""
    size = n + 3  # 0 start, 1..n channels, n+1 conversion, n+2 null
    counts = np.zeros((size, size))
    for j in range(len(offsets) - 1):
        seq = [0, *(int(c) + 1 for c in channel[offsets[j] : offsets[j + 1]])]
        for a, b in zip(seq[:-1], seq[1:], strict=True):
            counts[a, b] += conv[j] + null[j]
        counts[seq[-1], n + 1] += conv[j]
        counts[seq[-1], n + 2] += null[j]

    def p_conv(removed: int | None) -> float:
        probs = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-300)
        keep = [s for s in range(n + 1) if s != removed and counts[s].sum() > 0]
        q = probs[np.ix_(keep, keep)]
        fundamental = np.linalg.inv(np.eye(len(keep)) - q)
        return float((fundamental @ probs[keep, n + 1])[0])

    base = p_conv(None)
    return base, np.array([1 - p_conv(c + 1) / base for c in range(n)])


def random_table(seed: int, rows: int, channels: int) -> tuple:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 7, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    channel = rng.integers(0, channels, offsets[-1]).astype(np.int32)
    conv = rng.integers(0, 3, rows).astype(np.float64)
    null = rng.integers(0, 4, rows).astype(np.float64)
    return offsets, channel, channels, conv, null


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_an_independent_solver(seed: int) -> None:
    data = random_table(seed, rows=300, channels=6)
    fit = fit_markov(*data)
    base, effects = independent_first_order(*data)
    assert fit.conversion_probability == pytest.approx(base, rel=1e-10)
    np.testing.assert_allclose(fit.removal_effects, effects, rtol=1e-9, atol=1e-12)


def test_deterministic() -> None:
    data = random_table(5, rows=2000, channels=8)
    a, b = fit_markov(*data, order=3), fit_markov(*data, order=3)
    assert np.array_equal(a.removal_effects, b.removal_effects)
    assert a.conversion_probability == b.conversion_probability


@pytest.mark.parametrize("lu_fallback", [False, True])
def test_sparse_solvers_agree_with_dense(
    monkeypatch: pytest.MonkeyPatch, lu_fallback: bool
) -> None:
    data = random_table(9, rows=3000, channels=7)
    dense = fit_markov(*data, order=3, value=data[3] * 10)
    assert dense.states > 50
    monkeypatch.setattr(markov, "_DENSE_STATES", 10)
    if lu_fallback:  # GMRES cannot meet a zero residual: the sparse LU answers
        monkeypatch.setattr(markov, "_RESIDUAL", 0.0)
        monkeypatch.setattr(markov, "_MAX_ITERATIONS", 1)
    sparse = fit_markov(*data, order=3, value=data[3] * 10)
    np.testing.assert_allclose(sparse.removal_effects, dense.removal_effects, atol=1e-10)
    assert sparse.value_removal_effects is not None and dense.value_removal_effects is not None
    np.testing.assert_allclose(
        sparse.value_removal_effects, dense.value_removal_effects, atol=1e-10
    )
    assert sparse.conversion_probability == pytest.approx(dense.conversion_probability, rel=1e-10)


def test_window_codes_via_unique_agree_with_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    data = random_table(4, rows=500, channels=5)
    lookup = fit_markov(*data, order=2)
    monkeypatch.setattr(markov, "_DENSE_CODES", 1)
    unique = fit_markov(*data, order=2)
    assert np.array_equal(lookup.removal_effects, unique.removal_effects)


def test_journeys_credit_splits_by_removal_effects() -> None:
    # Journeys version of test_first_order_by_hand: RE A 1/3, B 1 -> weights 1/4, 3/4.
    j = journeys_from_lists(
        [["A", "B"], ["A"], ["B"], ["B"], ["A", "A", "B"], []],
        [True, False, True, False, True, True],
    )
    fit = fit_channel_weights("markov", j)
    assert fit.meta["method"] == "exact"
    c = credit("markov", j)
    ab = c[0:2]
    assert ab[1] / ab[0] == pytest.approx(fit.weights[1] / fit.weights[0])
    # A, A, B: A's share is split equally between its two touches
    assert c[5] == pytest.approx(c[6]) and c[5] + c[6] + c[7] == pytest.approx(1)
    assert c[7] / (c[5] + c[6]) == pytest.approx(fit.weights[1] / fit.weights[0])


def test_markov_k_uses_the_configured_order() -> None:
    j = journeys_from_lists([["A", "B", "C"], ["A", "C"], ["B"]], [True, False, True], direct=None)
    assert fit_channel_weights("markov_k", j).meta["order"] == 2
    fit3 = fit_channel_weights("markov_k", j, ModelParams(markov_order=3))
    assert fit3.meta["order"] == 3
    np.testing.assert_allclose(fit_channel_weights("markov_k", j).raw, [0.5, 1, 0.5])


def test_without_conversions_every_journey_falls_back_to_linear() -> None:
    j = journeys_from_lists([["A", "B"], ["B", "C", "C"]], [False, False])
    assert np.all(fit_channel_weights("markov", j).weights == 0)
    np.testing.assert_allclose(credit("markov", j), [0.5, 0.5, 1 / 3, 1 / 3, 1 / 3])


def test_order_too_high_is_refused() -> None:
    with pytest.raises(ValueError, match="too high"):
        fit_markov(*random_table(1, rows=10, channels=9), order=30)
