"""Rule-based models: each returns a credit per touch, every non-empty journey summing to 1.

Anchored models (position-based, W-shaped, full-path) share one rule, :func:`anchored`:
each *role* (first touch, lead-creation touch, opportunity-creation touch, closing touch) puts
its weight on its touch; roles that fall on the same touch add up on it; a role that is
missing (no lead or opportunity touch, ``-1``) contributes nothing; the *rest* weight is shared
equally by the touches that hold no role and is dropped when every touch holds one; finally
each journey's credits are divided by their sum. So W-shaped on ``A B C D`` with the lead at
``B`` and the opportunity at ``C`` gives 0.3/0.3/0.3/0.1; with lead and first both at ``A`` it
gives ``A`` 0.6, ``B`` 0.1, ``C`` 0.3; a one-touch journey always gives 1.
"""

from __future__ import annotations

import numpy as np

from connector.attribution.journeys import Float, Int, Journeys, segment_max, segment_sum
from connector.attribution.params import ModelParams

_DAY = 86_400.0


def _first_pos(j: Journeys) -> Int:
    return np.where(j.lengths > 0, j.offsets[:-1], -1)


def _last_pos(j: Journeys) -> Int:
    return np.where(j.lengths > 0, j.offsets[1:] - 1, -1)


def _one_per_journey(j: Journeys, pos: Int) -> Float:
    out = np.zeros(j.n_touches, dtype=np.float64)
    out[pos[pos >= 0]] = 1.0
    return out


def first_touch(j: Journeys, params: ModelParams) -> Float:
    return _one_per_journey(j, _first_pos(j))


def last_touch(j: Journeys, params: ModelParams) -> Float:
    return _one_per_journey(j, _last_pos(j))


def last_non_direct(j: Journeys, params: ModelParams) -> Float:
    """Last touch whose channel is not ``j.direct``; the last touch when all are direct."""
    if j.direct < 0 or j.n_touches == 0:
        return last_touch(j, params)
    index = np.arange(j.n_touches, dtype=np.int64)
    candidate = np.where(j.channel != j.direct, index, -1)
    nonempty = j.lengths > 0
    pos = np.full(j.n_journeys, -1, dtype=np.int64)
    pos[nonempty] = np.maximum.reduceat(candidate, j.offsets[:-1][nonempty])
    pos = np.where(nonempty & (pos < 0), _last_pos(j), pos)
    return _one_per_journey(j, pos)


def linear(j: Journeys, params: ModelParams) -> Float:
    return 1.0 / j.lengths[j.journey_of_touch]


def time_decay(j: Journeys, params: ModelParams) -> Float:
    """Weight ``2 ** (-(end_ts - ts) / half_life)``, normalised per journey.

    The milestone factor ``2 ** (-end_ts / half_life)`` is common to a journey's touches and
    cancels in the normalisation, so weights are taken relative to the journey's latest touch
    (``2 ** ((ts - latest) / half_life)``, the latest touch weighing 1): same result, and no
    underflow to 0/0 for touches months before the milestone.
    """
    if j.n_touches == 0:
        return np.zeros(0, dtype=np.float64)
    latest = segment_max(j.ts, j.offsets, empty=0.0)
    weight = np.exp2((j.ts - latest[j.journey_of_touch]) / (params.half_life_days * _DAY))
    return weight / segment_sum(weight, j.offsets)[j.journey_of_touch]


def anchored(j: Journeys, roles: list[tuple[Int, float]], rest: float) -> Float:
    """Credit from (touch position per journey, weight) roles plus a rest weight.

    See the module docstring for how coinciding and missing roles are handled.
    """
    credit = np.zeros(j.n_touches, dtype=np.float64)
    holds_role = np.zeros(j.n_touches, dtype=np.bool_)
    for pos, weight in roles:
        given = pos[pos >= 0]  # one touch per journey, so no index repeats within a role
        credit[given] += weight
        holds_role[given] = True
    journey = j.journey_of_touch
    others = j.lengths - segment_sum(holds_role.astype(np.float64), j.offsets)
    free = ~holds_role
    credit[free] = rest / others[journey[free]]
    total = segment_sum(credit, j.offsets)
    result: Float = credit / total[journey]
    return result


def position_based(j: Journeys, params: ModelParams) -> Float:
    """U-shaped: first 40 %, last 40 %, the middle touches share 20 % (1 touch: 1; 2: 50/50)."""
    first, middle, last = params.position_based
    return anchored(j, [(_first_pos(j), first), (_last_pos(j), last)], middle)


def w_shaped(j: Journeys, params: ModelParams) -> Float:
    """First, lead-creation and opportunity-creation touches 30 % each, the rest share 10 %.

    Coinciding or missing roles: see :func:`anchored` (weights add up, then renormalise).
    """
    first, lead, opp, rest = params.w_shaped
    return anchored(j, [(_first_pos(j), first), (j.lead_pos, lead), (j.opp_pos, opp)], rest)


def full_path(j: Journeys, params: ModelParams) -> Float:
    """First, lead, opportunity and closing (last) touches 22.5 % each, the rest share 10 %.

    Coinciding or missing roles: see :func:`anchored` (weights add up, then renormalise).
    """
    first, lead, opp, closing, rest = params.full_path
    roles = [(_first_pos(j), first), (j.lead_pos, lead), (j.opp_pos, opp), (_last_pos(j), closing)]
    return anchored(j, roles, rest)
