"""Attribute a path table: ``closedloop paths FILE`` (see :mod:`.path_table` for the input).

Output: one row per model and channel, ``model,channel,conversions,value`` (``fmt`` "csv",
"json" or "table").

``first_touch``, ``last_touch`` and ``linear`` equal ChannelAttribution's ``heuristic_models``
(linear counts repeated touches, as it does); ``markov`` / ``markov_k`` split the total
conversions and the total value in proportion to the exact removal effects (conversions and
value effects respectively, see :mod:`connector.attribution.markov`), as ChannelAttribution's
``markov_model`` does by simulation; ``shapley`` splits them by channel-set Shapley values;
``position_based`` and ``last_non_direct`` (a channel named ``Direct``) work on the path
order. Models needing timestamps or lead/opportunity milestones are refused. SciPy is only
imported by Markov chains too large for NumPy's dense solver.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from connector.attribution.engine import credit
from connector.attribution.journeys import Float, Journeys, weighted_count
from connector.attribution.markov import fit_markov
from connector.attribution.params import ModelParams
from connector.attribution.path_table import PathTable, read_path_table
from connector.attribution.shapley import fit_shapley
from connector.kernel.errors import ConfigError

PATH_MODELS = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "position_based",
    "markov",
    "markov_k",
    "shapley",
)
_NEEDS_TIME = {
    "time_decay": "touch timestamps",
    "w_shaped": "lead- and opportunity-creation touches",
    "full_path": "lead- and opportunity-creation touches",
}
_FORMATS = ("csv", "json", "table")


def paths_report(
    file: Path,
    models: list[str],
    sep: str = ">",
    fmt: str = "csv",
    params: ModelParams | None = None,
) -> str:
    """Read ``file``, run ``models`` and render ``model,channel,conversions,value`` rows."""
    chosen = _check_models(models)
    if fmt not in _FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose from {', '.join(_FORMATS)}")
    table = read_path_table(file, sep)
    results = {m: attribute_paths(table, m, params) for m in chosen}
    return _render(table.channels, results, fmt)


def _check_models(models: list[str]) -> list[str]:
    chosen = [m.strip() for m in models if m.strip()]
    if not chosen:
        raise ConfigError("no model given; choose from " + ", ".join(PATH_MODELS))
    for m in chosen:
        if m in _NEEDS_TIME:
            raise ConfigError(
                f"model {m!r} needs {_NEEDS_TIME[m]}, which a path table does not have; "
                f"path-table models: {', '.join(PATH_MODELS)}"
            )
        if m not in PATH_MODELS:
            raise ConfigError(f"unknown model {m!r}; choose from {', '.join(PATH_MODELS)}")
    return list(dict.fromkeys(chosen))


# --- attributing ---------------------------------------------------------------------------


def attribute_paths(
    table: PathTable, model: str, params: ModelParams | None = None
) -> tuple[Float, Float]:
    """(conversions, value) attributed to each channel of ``table`` by ``model``."""
    p = params or ModelParams()
    n = len(table.channels)
    args = (table.offsets, table.channel, n, table.conversions, table.null)
    if model in ("markov", "markov_k"):
        fit = fit_markov(*args, order=1 if model == "markov" else p.markov_order, value=table.value)
        value_effects = fit.value_removal_effects
        if value_effects is None:  # not reached: a value array was given
            value_effects = np.zeros(n, dtype=np.float64)
        return _split(table.conversions, fit.removal_effects), _split(table.value, value_effects)
    if model == "shapley":
        by_conv, by_value = (
            fit_shapley(
                *args,
                worth=worth,
                game=p.shapley_game,
                exact_max=p.shapley_exact_max,
                samples=p.shapley_samples,
                seed=p.seed,
            )
            for worth in (table.conversions, table.value)
        )
        return _split(table.conversions, by_conv.values), _split(table.value, by_value.values)
    per_touch = credit(model, _as_journeys(table), p)
    journey = np.repeat(np.arange(len(table.offsets) - 1), np.diff(table.offsets))
    code = table.channel.astype(np.int64)
    conversions = weighted_count(code, per_touch * table.conversions[journey], n)
    value = weighted_count(code, per_touch * table.value[journey], n)
    return conversions, value


def _split(totals: Float, weights: Float) -> Float:
    positive = np.clip(weights, 0.0, None)
    share = positive.sum()
    if share <= 0:
        return np.zeros_like(positive)
    result: Float = totals.sum() * positive / share
    return result


def _as_journeys(table: PathTable) -> Journeys:
    n = len(table.offsets) - 1
    lowered = [c.lower() for c in table.channels]
    direct = next((i for i, c in enumerate(lowered) if c in ("direct", "(direct)")), -1)
    return Journeys(
        offsets=table.offsets,
        channel=table.channel,
        ts=np.zeros(len(table.channel), dtype=np.float64),
        end_ts=np.zeros(n, dtype=np.float64),
        lead_pos=np.full(n, -1, dtype=np.int64),
        opp_pos=np.full(n, -1, dtype=np.int64),
        converted=table.conversions > 0,
        channels=table.channels,
        direct=direct,
    )


# --- rendering -----------------------------------------------------------------------------


def _number_text(x: float) -> str:
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _render(channels: tuple[str, ...], results: dict[str, tuple[Float, Float]], fmt: str) -> str:
    rows = [
        (model, name, float(conv[i]), float(value[i]))
        for model, (conv, value) in results.items()
        for i, name in enumerate(channels)
    ]
    if fmt == "json":
        records = [
            {"model": m, "channel": c, "conversions": round(v, 6), "value": round(w, 6)}
            for m, c, v, w in rows
        ]
        return json.dumps(records, indent=2) + "\n"
    cells = [(m, c, _number_text(v), _number_text(w)) for m, c, v, w in rows]
    header = ("model", "channel", "conversions", "value")
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(cells)
        return out.getvalue()
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(4)]
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i >= 2 else cell.ljust(widths[i]) for i, cell in enumerate(r)
        ).rstrip()
        for r in [header, *cells]
    ]
    return "\n".join(lines) + "\n"
