"""``credit()`` over every model: sums, empty journeys, weights, validation, totals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from connector.attribution import (
    MODELS,
    Journeys,
    ModelParams,
    channel_totals,
    credit,
    credit_from_weights,
    journeys,
    journeys_from_lists,
)

CHANNELS = ("Search", "Social", "Email", "Display", "Direct")


def synthetic(seed: int, n: int = 400) -> Journeys:
    rng = np.random.default_rng(seed)
    paths, ts, lead, opp = [], [], [], []
    for _ in range(n):
        length = int(rng.integers(0, 7))
        paths.append([str(c) for c in rng.choice(CHANNELS, length)])
        ts.append(np.sort(rng.integers(0, 10, length) * 86_400.0).tolist())  # many ties
        lead.append(int(rng.integers(-1, length)) if length else -1)
        opp.append(int(rng.integers(-1, length)) if length else -1)
    return journeys_from_lists(
        paths, rng.random(n) < 0.4, ts=ts, end_ts=[10 * 86_400.0] * n, lead=lead, opp=opp
    )


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", [0, 1])
def test_every_model_sums_to_one_per_journey(model: str, seed: int) -> None:
    j = synthetic(seed)
    c = credit(model, j)
    assert c.shape == (j.n_touches,) and c.dtype == np.float64
    assert np.all(c >= 0) and np.all(np.isfinite(c))
    sums = np.zeros(j.n_journeys)
    np.add.at(sums, j.journey_of_touch, c)
    assert np.all(np.abs(sums[j.lengths > 0] - 1) < 1e-9)
    assert np.all(sums[j.lengths == 0] == 0)
    assert np.any(j.lengths == 0)


def test_only_empty_journeys_and_no_journeys() -> None:
    for j in (journeys_from_lists([[], []], [True, False]), journeys_from_lists([], [])):
        for model in MODELS:
            assert credit(model, j).shape == (0,)


def test_credit_from_weights_splits_by_channel_then_touch() -> None:
    j = journeys_from_lists([["A", "A", "B"], ["C", "C"]], direct=None)
    c = credit_from_weights(j, np.array([0.5, 0.5, 0.0]))
    np.testing.assert_allclose(c, [0.25, 0.25, 0.5, 0.5, 0.5])  # C weighs 0 -> linear


@pytest.mark.parametrize("model", ["markov", "shapley"])
def test_sorted_channel_counts_match_the_dense_table(
    monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    j = synthetic(3)
    dense = credit(model, j)
    monkeypatch.setattr(journeys, "_DENSE_CELLS", 0)
    assert np.array_equal(credit(model, j), dense)


def test_channel_totals() -> None:
    j = journeys_from_lists([["A", "B"], ["B"], []])
    totals = channel_totals(credit("linear", j), j, np.array([100.0, 10.0, 7.0]))
    np.testing.assert_allclose(totals, [50, 60])


def test_unknown_model_and_inconsistent_arrays() -> None:
    j = journeys_from_lists([["A"]])
    with pytest.raises(ValueError, match="unknown attribution model 'nope'"):
        credit("nope", j)
    broken = replace(j, offsets=np.array([0, 2]))
    with pytest.raises(ValueError, match="offsets"):
        credit("linear", broken)
    wrong_code = replace(j, channel=np.array([3], dtype=np.int32))
    with pytest.raises(ValueError, match="channel codes"):
        credit("linear", wrong_code)


@pytest.mark.parametrize(
    "bad",
    [
        {"half_life_days": 0},
        {"markov_order": 0},
        {"position_based": (0.0, 0.5, 0.5)},
        {"w_shaped": (0.3, -0.1, 0.3, 0.1)},
        {"shapley_game": "revenue"},
        {"shapley_exact_max": 30},
        {"shapley_samples": 1},
    ],
)
def test_model_params_are_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        ModelParams(**bad)


def test_scales_without_python_loops() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    lengths = rng.integers(0, 12, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    t = int(offsets[-1])
    j = Journeys(
        offsets=offsets,
        channel=rng.integers(0, 12, t).astype(np.int32),
        ts=np.sort(rng.random(t)),
        end_ts=np.ones(n),
        lead_pos=np.full(n, -1, dtype=np.int64),
        opp_pos=np.full(n, -1, dtype=np.int64),
        converted=rng.random(n) < 0.1,
        channels=tuple(f"c{i}" for i in range(12)),
        direct=0,
    )
    for model in MODELS:
        c = credit(model, j)
        assert abs(c.sum() - np.count_nonzero(lengths)) < 1e-6 * n
