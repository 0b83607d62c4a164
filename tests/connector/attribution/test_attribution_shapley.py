"""Shapley values: closed form and exact DP against brute force, sampling within its error."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from connector.attribution import (
    ModelParams,
    credit,
    fit_channel_weights,
    fit_shapley,
    journeys_from_lists,
)


def random_journeys(seed: int, rows: int, channels: int, max_len: int = 5) -> tuple:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, max_len + 1, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    channel = rng.integers(0, channels, offsets[-1]).astype(np.int32)
    conv = rng.integers(0, 3, rows).astype(np.float64)
    null = rng.integers(0, 3, rows).astype(np.float64)
    return offsets, channel, channels, conv, null


def brute_force(offsets, channel, n, conv, null, game: str) -> np.ndarray:
    """Shapley by enumerating every ordering of the present channels, v(S) from its definition."""
    sets = [
        frozenset(channel[a:b].tolist()) for a, b in zip(offsets[:-1], offsets[1:], strict=True)
    ]
    players = sorted(set().union(*sets))

    def v(coalition: frozenset) -> float:
        inside = [i for i, s in enumerate(sets) if s and s <= coalition]
        if game == "conversions":
            return float(sum(conv[i] for i in inside))
        journeys = sum(conv[i] + null[i] for i in inside)
        return float(sum(conv[i] for i in inside) / journeys) if journeys else 0.0

    phi = np.zeros(n)
    for order in itertools.permutations(players):
        before: frozenset = frozenset()
        for p in order:
            phi[p] += v(before | {p}) - v(before)
            before = before | {p}
    return phi / math.factorial(len(players))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_form_matches_brute_force(seed: int) -> None:
    data = random_journeys(seed, rows=60, channels=5)
    fit = fit_shapley(*data)
    assert fit.method == "closed_form"
    np.testing.assert_allclose(fit.values, brute_force(*data, "conversions"), atol=1e-9)
    assert fit.values.sum() == pytest.approx(data[3][np.diff(data[0]) > 0].sum())  # efficiency


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conversion_rate_exact_matches_brute_force(seed: int) -> None:
    data = random_journeys(seed, rows=60, channels=5)
    fit = fit_shapley(*data, game="conversion_rate")
    assert fit.method == "exact" and fit.stderr is None and fit.players == 5
    np.testing.assert_allclose(fit.values, brute_force(*data, "conversion_rate"), atol=1e-12)


def test_closed_form_by_hand() -> None:
    # A,B converts twice -> 1 each; B,B,C converts once -> 1/2 each; A alone: null only.
    offsets = np.array([0, 2, 5, 6], dtype=np.int64)
    channel = np.array([0, 1, 1, 1, 2, 0], dtype=np.int32)
    fit = fit_shapley(offsets, channel, 3, np.array([2.0, 1.0, 0.0]), np.array([0.0, 0, 4]))
    np.testing.assert_allclose(fit.values, [1, 1.5, 0.5])
    worth = fit_shapley(offsets, channel, 3, np.ones(3), np.zeros(3), worth=np.array([10.0, 4, 0]))
    np.testing.assert_allclose(worth.values, [5, 7, 2])


def test_sampled_values_lie_within_their_standard_error() -> None:
    data = random_journeys(3, rows=400, channels=17, max_len=4)
    exact = fit_shapley(*data, game="conversion_rate", exact_max=17)
    sampled = fit_shapley(*data, game="conversion_rate", exact_max=15, samples=400, seed=1)
    assert exact.method == "exact" and sampled.method == "sampled"
    assert sampled.players == 17 and sampled.permutations == 400
    assert sampled.stderr is not None and np.all(sampled.stderr > 0)
    z = np.abs(sampled.values - exact.values) / sampled.stderr
    assert z.max() < 4.5, z
    # efficiency holds for every permutation, hence exactly for the mean
    assert sampled.values.sum() == pytest.approx(exact.values.sum(), abs=1e-12)
    more = fit_shapley(*data, game="conversion_rate", exact_max=15, samples=1600, seed=1)
    assert more.stderr is not None
    assert 1.6 < np.median(sampled.stderr / more.stderr) < 2.5  # ~ sqrt(4)


def test_sampling_is_seeded() -> None:
    data = random_journeys(4, rows=100, channels=16)
    a = fit_shapley(*data, game="conversion_rate", samples=50, seed=7)
    b = fit_shapley(*data, game="conversion_rate", samples=50, seed=7)
    c = fit_shapley(*data, game="conversion_rate", samples=50, seed=8)
    assert np.array_equal(a.values, b.values) and not np.array_equal(a.values, c.values)


def test_more_than_62_channels_use_several_mask_words() -> None:
    data = random_journeys(5, rows=300, channels=70, max_len=3)
    fit = fit_shapley(*data, game="conversion_rate", samples=30)
    assert fit.method == "sampled" and fit.players == len(np.unique(data[1]))
    assert fit.values.sum() == pytest.approx(
        data[3][np.diff(data[0]) > 0].sum() / (data[3] + data[4])[np.diff(data[0]) > 0].sum()
    )


def test_journey_credit_and_metadata() -> None:
    j = journeys_from_lists(
        [["A", "B"], ["A", "B"], ["B", "B", "C"], ["A"]], [True, True, True, False]
    )
    fit = fit_channel_weights("shapley", j)
    np.testing.assert_allclose(fit.raw, [1, 1.5, 0.5])
    np.testing.assert_allclose(fit.weights, [1 / 3, 1 / 2, 1 / 6])
    c = credit("shapley", j)
    np.testing.assert_allclose(c[:2], [0.4, 0.6])  # 1/3 : 1/2
    np.testing.assert_allclose(c[4:8], [3 / 8, 3 / 8, 1 / 4, 1])  # B's 3/4 over two touches
    rate = fit_channel_weights(
        "shapley", j, ModelParams(shapley_game="conversion_rate", shapley_exact_max=1)
    )
    assert rate.meta["method"] == "sampled" and rate.meta["stderr"].shape == (3,)
    assert rate.meta["permutations"] == ModelParams().shapley_samples
