"""Attribute a ChannelAttribution-style path table: ``closedloop paths FILE``.

Input: CSV with a header holding ``path`` (channels joined by ``sep``, spaces around them
ignored, empty steps skipped, as ChannelAttribution does) and ``total_conversions``; optional
``total_conversion_value`` and ``total_null`` (absent or blank = 0); other columns are ignored.
The delimiter is ``,`` or, when the header uses one, ``;`` / tab / ``|``. Output: one row per
model and channel, ``model,channel,conversions,value`` (``fmt`` "csv", "json" or "table").

``first_touch``, ``last_touch`` and ``linear`` equal ChannelAttribution's ``heuristic_models``
(linear counts repeated touches, as it does); ``markov`` / ``markov_k`` split the total
conversions and the total value in proportion to the exact removal effects (conversions and
value effects respectively, see :mod:`connector.attribution.markov`), as ChannelAttribution's
``markov_model`` does by simulation; ``shapley`` splits them by channel-set Shapley values;
``position_based`` and ``last_non_direct`` (a channel named ``Direct``) work on the path
order. Models needing timestamps or lead/opportunity milestones are refused.

Parsing avoids a per-field Python loop: the file is split in a few C-level string calls, the
numbers parsed by NumPy, and the paths de-duplicated before they are tokenised; models then
run once per distinct path with its summed counts. Any irregular row sends the file through
the :mod:`csv` module, which names the bad line and column. SciPy is only imported by models
whose chain is too large for NumPy's dense solver.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from connector.attribution import (
    Journeys,
    ModelParams,
    credit,
    fit_markov,
    fit_shapley,
)
from connector.attribution.journeys import Float, weighted_count
from connector.errors import ConfigError

PATH, CONV, VALUE, NULL = "path", "total_conversions", "total_conversion_value", "total_null"
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
_DELIMITERS = (",", ";", "\t", "|")
_FORMATS = ("csv", "json", "table")


@dataclass(frozen=True)
class PathTable:
    """Distinct paths (as touch arrays) with their counts summed over the file's rows."""

    channels: tuple[str, ...]
    offsets: npt.NDArray[np.int64]
    channel: npt.NDArray[np.int32]
    conversions: Float
    value: Float
    null: Float


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


# --- reading -------------------------------------------------------------------------------


def read_path_table(file: Path, sep: str = ">") -> PathTable:
    """Parse a ChannelAttribution path table; ConfigError names file, line and column."""
    if not sep or sep.isspace():
        raise ConfigError("the path separator must be a visible character such as '>'")
    try:
        raw = Path(file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the path table ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{file}:{line}: not UTF-8 text (byte {exc.start})") from exc
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    header, _, body = text.partition("\n")
    layout = _header(file, header, sep)
    body = body.rstrip("\n")
    parsed = _fast_columns(body, layout) if '"' not in text else None
    paths, numbers = parsed or _csv_columns(file, body, layout)
    return _build(file, paths, numbers, sep)


@dataclass(frozen=True)
class _Layout:
    delimiter: str
    width: int  # fields per row
    columns: dict[str, int]  # known column -> field index


def _header(file: Path, header: str, sep: str) -> _Layout:
    usable = [d for d in _DELIMITERS if d not in sep]
    delimiter = next((d for d in usable if d in header), ",")
    names = (
        [
            c.strip().strip('"').strip().lower()
            for c in next(csv.reader([header], delimiter=delimiter))
        ]
        if header.strip()
        else []
    )
    found = ", ".join(repr(n) for n in names) or "nothing"
    for required in (PATH, CONV):
        if required not in names:
            raise ConfigError(
                f"{file}:1: missing column {required!r} in the header (found {found})"
            )
    wanted = (PATH, CONV, VALUE, NULL)
    for name in wanted:
        if names.count(name) > 1:
            raise ConfigError(f"{file}:1: column {name!r} appears twice in the header")
    columns = {name: names.index(name) for name in wanted if name in names}
    return _Layout(delimiter, len(names), columns)


def _fast_columns(body: str, layout: _Layout) -> tuple[list[str], dict[str, Float]] | None:
    """All columns by slicing one flat field list; None when any row is irregular."""
    width, columns = layout.width, layout.columns
    if not body or "\n\n" in body:
        return None
    rows = body.count("\n") + 1
    fields = body.replace("\n", layout.delimiter).split(layout.delimiter)
    if len(fields) != rows * width:
        return None
    numbers: dict[str, Float] = {}
    try:
        for name in (CONV, VALUE, NULL):
            if name in columns:
                numbers[name] = np.array(fields[columns[name] :: width], dtype=np.float64)
    except ValueError:
        return None
    if any(not np.all(np.isfinite(v) & (v >= 0)) for v in numbers.values()):
        return None  # the csv path names the offending cell
    return fields[columns[PATH] :: width], numbers


def _csv_columns(file: Path, body: str, layout: _Layout) -> tuple[list[str], dict[str, Float]]:
    """Row by row with the csv module: slower, and precise about what is wrong where."""
    width, columns = layout.width, layout.columns
    reader = csv.reader(io.StringIO(body), delimiter=layout.delimiter)
    paths: list[str] = []
    numeric = [(n, columns[n]) for n in (CONV, VALUE, NULL) if n in columns]
    values: dict[str, list[float]] = {n: [] for n, _ in numeric}
    try:
        for row in reader:
            line = reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                raise ConfigError(f"{file}:{line}: expected {width} fields, found {len(row)}")
            paths.append(row[columns[PATH]])
            for name, col in numeric:
                values[name].append(_number(file, line, name, col, row[col]))
    except csv.Error as exc:
        raise ConfigError(f"{file}:{reader.line_num + 1}: {exc}") from exc
    return paths, {n: np.array(v, dtype=np.float64) for n, v in values.items()}


def _number(file: Path, line: int, name: str, col: int, cell: str) -> float:
    where = f"{file}:{line}: column {col + 1} ({name})"
    if not cell.strip():
        if name == CONV:
            raise ConfigError(f"{where}: empty; give a number of conversions")
        return 0.0
    try:
        number = float(cell)
    except ValueError:
        raise ConfigError(f"{where}: {cell.strip()!r} is not a number") from None
    if not np.isfinite(number) or number < 0:
        raise ConfigError(f"{where}: {cell.strip()!r} must be a finite number >= 0")
    return number


def _build(file: Path, paths: list[str], numbers: dict[str, Float], sep: str) -> PathTable:
    distinct: dict[str, int] = {}
    row_path = np.fromiter(
        (distinct.setdefault(p, len(distinct)) for p in paths), dtype=np.int64, count=len(paths)
    )
    names: dict[str, int] = {}
    steps = [[s.strip() for s in p.split(sep)] for p in distinct]
    codes = [names.setdefault(s, len(names)) if s else -1 for path in steps for s in path]
    code = np.array(codes, dtype=np.int32)
    raw_lengths = np.fromiter((len(s) for s in steps), dtype=np.int64, count=len(steps))
    step_path = np.repeat(np.arange(len(steps), dtype=np.int64), raw_lengths)
    real = code >= 0
    lengths = np.bincount(step_path[real], minlength=len(steps))
    if np.any(lengths == 0):
        empty = int(np.nonzero(lengths == 0)[0][0])
        line = int(np.argmax(row_path == empty)) + 2
        raise ConfigError(f"{file}:{line}: column {PATH!r} holds no channel")
    offsets = np.zeros(len(steps) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    zeros = np.zeros(len(paths), dtype=np.float64)
    size = len(steps)
    return PathTable(
        channels=tuple(names),
        offsets=offsets,
        channel=code[real],
        conversions=weighted_count(row_path, numbers[CONV], size),
        value=weighted_count(row_path, numbers.get(VALUE, zeros), size),
        null=weighted_count(row_path, numbers.get(NULL, zeros), size),
    )


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
