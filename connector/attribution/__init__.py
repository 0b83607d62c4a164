"""Attribution models as pure functions over NumPy arrays (no I/O).

    credit(model, journeys, params)  -> credit per touch, each journey with touches sums to 1
    fit_channel_weights(...)         -> channel weights + metadata of markov / markov_k / shapley
    channel_totals(credit, j, amts)  -> per-channel sum of credit x journey amount

Families: :mod:`.heuristics` (first, last, last non-direct, linear, time decay, position based,
W-shaped, full path), :mod:`.markov` (exact absorbing-chain removal effects, first and k-order),
:mod:`.shapley` (channel-set Shapley values). :mod:`.journeys` holds the array container;
:mod:`.path_table` reads a ChannelAttribution-style path table and :mod:`.paths` attributes it.
"""

from connector.attribution.engine import (
    DATA_DRIVEN,
    MODELS,
    ChannelFit,
    channel_totals,
    credit,
    credit_from_weights,
    fit_channel_weights,
)
from connector.attribution.journeys import Journeys, journeys_from_lists
from connector.attribution.markov import MarkovFit, fit_markov
from connector.attribution.params import ModelParams
from connector.attribution.shapley import ShapleyFit, fit_shapley

__all__ = [
    "DATA_DRIVEN",
    "MODELS",
    "ChannelFit",
    "Journeys",
    "MarkovFit",
    "ModelParams",
    "ShapleyFit",
    "channel_totals",
    "credit",
    "credit_from_weights",
    "fit_channel_weights",
    "fit_markov",
    "fit_shapley",
    "journeys_from_lists",
]
