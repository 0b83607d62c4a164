"""The configurable knobs of the attribution models, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ShapleyGame = Literal["conversions", "conversion_rate"]


@dataclass(frozen=True)
class ModelParams:
    """Weights, half-life, Markov order and Shapley settings; the defaults are the usual ones.

    ``position_based`` = (first, middle, last); ``w_shaped`` = (first, lead creation,
    opportunity creation, rest); ``full_path`` = (first, lead creation, opportunity creation,
    closing touch, rest). Weights need not sum to 1: each journey's credit is normalised.
    ``shapley_game`` picks the coalition value (see :mod:`connector.attribution.shapley`);
    ``shapley_exact_max`` is the largest number of channels solved exactly when the game needs
    coalitions, beyond it ``shapley_samples`` random permutations are drawn with ``seed``.
    """

    half_life_days: float = 7.0
    position_based: tuple[float, float, float] = (0.4, 0.2, 0.4)
    w_shaped: tuple[float, float, float, float] = (0.3, 0.3, 0.3, 0.1)
    full_path: tuple[float, float, float, float, float] = (0.225, 0.225, 0.225, 0.225, 0.1)
    markov_order: int = 2
    shapley_game: ShapleyGame = "conversions"
    shapley_exact_max: int = 15
    shapley_samples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.half_life_days > 0:
            raise ValueError("half_life_days must be > 0")
        for name in ("position_based", "w_shaped", "full_path"):
            weights = getattr(self, name)
            if any(w < 0 for w in weights) or weights[0] <= 0:
                raise ValueError(f"{name} weights must be >= 0 with a positive first weight")
        if self.markov_order < 1:
            raise ValueError("markov_order must be >= 1")
        if self.shapley_game not in ("conversions", "conversion_rate"):
            raise ValueError("shapley_game must be 'conversions' or 'conversion_rate'")
        if not 1 <= self.shapley_exact_max <= 24:
            raise ValueError("shapley_exact_max must be between 1 and 24")
        if self.shapley_samples < 2:
            raise ValueError("shapley_samples must be >= 2")
