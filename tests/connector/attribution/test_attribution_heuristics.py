"""Rule-based models on hand-computed journeys."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from connector.attribution import Journeys, ModelParams, credit, journeys_from_lists

DAY = 86_400.0


class Credits:
    """Per-journey credit lists that compare equal to nested lists within 1e-12."""

    def __init__(self, model: str, j: Journeys, params: ModelParams | None = None) -> None:
        c = credit(model, j, params)
        self.rows = [c[a:b] for a, b in zip(j.offsets[:-1], j.offsets[1:], strict=True)]

    def __eq__(self, expected: object) -> bool:
        assert isinstance(expected, list) and len(expected) == len(self.rows)
        return all(
            len(r) == len(e) and np.allclose(r, e, rtol=0, atol=1e-12)
            for r, e in zip(self.rows, expected, strict=True)
        )

    def __repr__(self) -> str:
        return repr([r.tolist() for r in self.rows])


def by_journey(model: str, j: Journeys, params: ModelParams | None = None) -> Credits:
    return Credits(model, j, params)


def test_first_last_linear_with_single_touch_and_empty_journey() -> None:
    j = journeys_from_lists([["A", "B", "C"], ["B"], [], ["C", "C"]])
    assert by_journey("first_touch", j) == [[1, 0, 0], [1], [], [1, 0]]
    assert by_journey("last_touch", j) == [[0, 0, 1], [1], [], [0, 1]]
    assert by_journey("linear", j) == [[1 / 3, 1 / 3, 1 / 3], [1], [], [0.5, 0.5]]


def test_ties_in_timestamps_keep_array_order_and_share_decay_weight() -> None:
    j = journeys_from_lists([["A", "B", "C"]], ts=[[0.0, 0.0, 7 * DAY]], end_ts=[7 * DAY])
    assert by_journey("first_touch", j) == [[1, 0, 0]]
    # weights 2^-1, 2^-1, 2^0 -> 0.25, 0.25, 0.5
    assert by_journey("time_decay", j) == [[0.25, 0.25, 0.5]]


def test_time_decay_half_life_and_milestone() -> None:
    ts = [[0.0, 14 * DAY]]
    j = journeys_from_lists([["A", "B"]], ts=ts, end_ts=[14 * DAY])
    assert by_journey("time_decay", j, ModelParams(half_life_days=14)) == [[1 / 3, 2 / 3]]
    assert by_journey("time_decay", j) == [[0.2, 0.8]]  # 7 days: 1/4 vs 1
    later = journeys_from_lists([["A", "B"]], ts=ts, end_ts=[300 * DAY])
    assert by_journey("time_decay", later) == [[0.2, 0.8]]  # the milestone factor cancels


def test_time_decay_survives_touches_far_before_the_milestone() -> None:
    j = journeys_from_lists([["A", "B"]], ts=[[0.0, 1.0]], end_ts=[1e12])
    c = credit("time_decay", j)
    assert np.all(np.isfinite(c)) and c.sum() == pytest.approx(1.0)


def test_last_non_direct() -> None:
    j = journeys_from_lists([["A", "Direct", "Direct"], ["Direct", "Direct"], ["Direct", "B"]])
    assert by_journey("last_non_direct", j) == [[1, 0, 0], [0, 1], [0, 1]]
    no_direct = journeys_from_lists([["A", "B"]], direct=None)
    assert no_direct.direct == -1
    assert by_journey("last_non_direct", no_direct) == [[0, 1]]


def test_position_based_u_shape() -> None:
    j = journeys_from_lists([["A"], ["A", "B"], ["A", "B", "C"], ["A", "B", "C", "D"]])
    assert by_journey("position_based", j) == [
        [1],
        [0.5, 0.5],
        [0.4, 0.2, 0.4],
        [0.4, 0.1, 0.1, 0.4],
    ]
    custom = ModelParams(position_based=(0.3, 0.4, 0.3))
    assert by_journey("position_based", journeys_from_lists([["A", "B", "C"]]), custom) == [
        [0.3, 0.4, 0.3]
    ]


def test_w_shaped_roles_and_coincidences() -> None:
    paths = [list("ABCD"), list("ABCD"), list("ABC"), ["A"], list("ABC"), list("AB")]
    lead = [1, 0, 1, 0, 1, -1]
    opp = [2, 2, -1, 0, 1, -1]
    j = journeys_from_lists(paths, lead=lead, opp=opp)
    assert by_journey("w_shaped", j) == [
        [0.3, 0.3, 0.3, 0.1],  # every role on its own touch
        [0.6, 0.05, 0.3, 0.05],  # first = lead: weights add up
        [3 / 7, 3 / 7, 1 / 7],  # no opportunity: 0.3/0.3/0.1 renormalised
        [1.0],  # one touch holds every role
        [0.3, 0.6, 0.1],  # lead = opportunity
        [0.75, 0.25],  # only the first role, the rest goes to B
    ]


def test_full_path_roles_and_coincidences() -> None:
    paths = [list("ABCDE"), list("ABC"), list("AB")]
    j = journeys_from_lists(paths, lead=[1, 1, -1], opp=[2, 2, -1])
    assert by_journey("full_path", j) == [
        [0.225, 0.225, 0.225, 0.1, 0.225],
        [0.25, 0.25, 0.5],  # opportunity = closing touch: 0.225+0.225 of 0.9
        [0.5, 0.5],  # first and closing only
    ]


def test_roles_outside_their_journey_are_rejected() -> None:
    j = journeys_from_lists([["A", "B"], ["C"]])
    bad = replace(j, lead_pos=np.array([2, -1]))
    with pytest.raises(ValueError, match="lead_pos"):
        credit("w_shaped", bad)
