"""``credit(model, journeys)``: one entry point over every model family.

Data-driven models (``markov``, ``markov_k``, ``shapley``) first fit channel weights on every
journey, converted and null alike (:func:`fit_channel_weights`); a journey's credit is then
split over its distinct channels in proportion to their weights, and equally among the touches
of one channel; a journey whose channels all weigh 0 falls back to linear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connector.attribution import heuristics
from connector.attribution.journeys import (
    Float,
    Journeys,
    same_channel_touches,
    segment_sum,
    weighted_count,
)
from connector.attribution.markov import fit_markov
from connector.attribution.params import ModelParams
from connector.attribution.shapley import fit_shapley

Heuristic = Callable[[Journeys, ModelParams], Float]

HEURISTICS: dict[str, Heuristic] = {
    "first_touch": heuristics.first_touch,
    "last_touch": heuristics.last_touch,
    "last_non_direct": heuristics.last_non_direct,
    "linear": heuristics.linear,
    "time_decay": heuristics.time_decay,
    "position_based": heuristics.position_based,
    "w_shaped": heuristics.w_shaped,
    "full_path": heuristics.full_path,
}
DATA_DRIVEN = ("markov", "markov_k", "shapley")
MODELS: tuple[str, ...] = (*HEURISTICS, *DATA_DRIVEN)


@dataclass(frozen=True)
class ChannelFit:
    """Channel weights of a data-driven model (normalised to sum 1, or all 0) and what they
    came from: ``raw`` removal effects or Shapley values, and ``meta`` (method, order,
    conversion probability, Shapley standard errors...)."""

    model: str
    weights: Float
    raw: Float
    meta: dict[str, Any] = field(default_factory=dict)


def _normalised(raw: Float) -> Float:
    positive = np.clip(raw, 0.0, None)
    total = positive.sum()
    return positive / total if total > 0 else np.zeros_like(positive)


def fit_channel_weights(
    model: str, journeys: Journeys, params: ModelParams | None = None
) -> ChannelFit:
    """Fit a data-driven model on all journeys (converted = conversion, the others = null)."""
    p = params or ModelParams()
    conv = journeys.converted.astype(np.float64)
    null = 1.0 - conv
    args = (journeys.offsets, journeys.channel, len(journeys.channels), conv, null)
    if model in ("markov", "markov_k"):
        order = 1 if model == "markov" else p.markov_order
        fit = fit_markov(*args, order=order)
        meta: dict[str, Any] = {
            "method": "exact",
            "order": order,
            "states": fit.states,
            "conversion_probability": fit.conversion_probability,
        }
        return ChannelFit(model, _normalised(fit.removal_effects), fit.removal_effects, meta)
    if model == "shapley":
        sh = fit_shapley(
            *args,
            game=p.shapley_game,
            exact_max=p.shapley_exact_max,
            samples=p.shapley_samples,
            seed=p.seed,
        )
        meta = {"method": sh.method, "game": sh.game, "players": sh.players}
        if sh.stderr is not None:
            meta["stderr"] = sh.stderr
            meta["permutations"] = sh.permutations
        return ChannelFit(model, _normalised(sh.values), sh.values, meta)
    raise ValueError(f"{model!r} is not a data-driven model; choose from {', '.join(DATA_DRIVEN)}")


def credit_from_weights(journeys: Journeys, weights: Float) -> Float:
    """Split each journey over its distinct channels by weight (see the module docstring)."""
    j = journeys
    repeats = same_channel_touches(j.offsets, j.channel, len(j.channels))
    share = np.asarray(weights, dtype=np.float64)[j.channel] / repeats
    total = segment_sum(share, j.offsets)[j.journey_of_touch]
    linear = 1.0 / j.lengths[j.journey_of_touch]
    safe = np.where(total > 0, total, 1.0)
    result: Float = np.where(total > 0, share / safe, linear)
    return result


def credit(model: str, journeys: Journeys, params: ModelParams | None = None) -> Float:
    """Credit per touch; each journey with touches sums to 1, a journey without gets nothing."""
    journeys.validate()
    p = params or ModelParams()
    if model in HEURISTICS:
        return HEURISTICS[model](journeys, p)
    if model in DATA_DRIVEN:
        return credit_from_weights(journeys, fit_channel_weights(model, journeys, p).weights)
    raise ValueError(f"unknown attribution model {model!r}; choose from {', '.join(MODELS)}")


def channel_totals(credit: Float, journeys: Journeys, amounts: Float) -> Float:
    """Per channel code: the sum of credit x the journey's amount."""
    per_touch = credit * np.asarray(amounts, dtype=np.float64)[journeys.journey_of_touch]
    return weighted_count(journeys.channel.astype(np.int64), per_touch, len(journeys.channels))
