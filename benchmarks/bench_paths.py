"""Whole-process timing: ``closedloop paths`` vs ChannelAttribution and mam on a 1M-row table.

    python benchmarks/bench_paths.py --peer-python /tmp/peers/bin/python [--rows N] [--repeat 3]

The peers are never dependencies of closedloop: they run in a throwaway virtualenv of their
own, given by ``--peer-python`` (``python3 -m venv /tmp/peers && /tmp/peers/bin/pip install
marketing-attribution-models ChannelAttribution matplotlib``: ChannelAttribution imports
matplotlib without declaring it; mam is the PyPI package ``marketing-attribution-models``,
module ``mam``, built on Polars).

Writes (once, fixed seed) ``benchmarks/out/paths_<rows>.csv``: one journey per row over 12
channels, channels drawn from a first-order chain, conversions depending on the channels seen,
``total_null = 1 - total_conversions``. Then times, each as a fresh process including
interpreter start and imports, ``closedloop paths FILE --models first_touch,last_touch,linear,
markov``, a script running ChannelAttribution's ``heuristic_models`` and ``markov_model``
(with value and nulls) and one running mam's ``run_first_click``, ``run_last_click``,
``run_linear`` and ``run_markov`` (its public API: the file read with ``polars.read_csv``, then
``MAM(..., format_type="grouped_journey")`` with the conversion value, every row one journey
with its outcome, weight ``total_conversions + total_null``) on the same file, in turn
``--repeat`` times. Printed per tool: best and median wall time, peak RSS, and the ratio of
closedloop's to the faster peer's; then how far the results are apart (conversions and value
against ChannelAttribution, value against mam, which attributes one quantity; mam's Markov
splits each journey by its touches' removal effects, so its channel totals differ from a
split of the totals by removal effect, as ChannelAttribution's and closedloop's are). The same
table is timed again with CRLF line ends (``paths_<rows>_crlf.csv``: what Python's csv module,
Excel and most exports write), which must cost no more than LF.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
from processes import Run, run_process

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
MODELS = "first_touch,last_touch,linear,markov"
CHANNELS = (
    "Paid Search", "Organic Search", "Direct", "Email", "Paid Social", "Organic Social",
    "Display", "Referral", "Affiliates", "Video", "SMS", "Push",
)  # fmt: skip

CA_SCRIPT = """
import contextlib, io, json, sys
with contextlib.redirect_stdout(io.StringIO()):
    import pandas as pd
    from ChannelAttribution import heuristic_models, markov_model
frame = pd.read_csv(sys.argv[1])
with contextlib.redirect_stdout(io.StringIO()):
    h = heuristic_models(frame, "path", "total_conversions",
                         var_value="total_conversion_value", flg_pro=False)
    m = markov_model(frame, "path", "total_conversions", var_value="total_conversion_value",
                     var_null="total_null", verbose=False, flg_pro=False)
result = {}
for _, r in h.iterrows():
    for model, col in (("first_touch", "first_touch"), ("last_touch", "last_touch"),
                       ("linear", "linear_touch")):
        result[f"{model}|{r.channel_name}"] = [r[col + "_conversions"], r[col + "_value"]]
for _, r in m.iterrows():
    result[f"markov|{r.channel_name}"] = [r.total_conversions, r.total_conversion_value]
print(json.dumps(result))
"""

MAM_SCRIPT = """
import json, sys
import polars as pl
from mam import MAM
frame = pl.read_csv(sys.argv[1]).with_columns(
    (pl.col("total_conversions") > 0).alias("has_conversion"),
    (pl.col("total_conversions") + pl.col("total_null")).alias("occurrences"),
)
mam = MAM(frame, format_type="grouped_journey", channels_colname="path",
          journey_with_conv_colname="has_conversion", occurrences_colname="occurrences",
          path_separator=" > ", conversion_value_colname="total_conversion_value")
result = {}
for model, run in (("first_touch", mam.run_first_click), ("last_touch", mam.run_last_click),
                   ("linear", mam.run_linear), ("markov", mam.run_markov)):
    for channel, value in run().to_polars().iter_rows():
        result[f"{model}|{channel}"] = [None, value]
print(json.dumps(result))
"""
PEERS = {"ChannelAttribution": CA_SCRIPT, "mam": MAM_SCRIPT}


def generate(rows: int, seed: int = 2026) -> Path:
    """The path table, written once per row count (delete it to regenerate)."""
    file = OUT / f"paths_{rows}.csv"
    if file.exists():
        return file
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / ".gitignore").write_text("*\n")  # generated data stays out of git
    rng = np.random.default_rng(seed)
    n = len(CHANNELS)
    start = rng.dirichlet(np.full(n, 2.0))
    moves = rng.dirichlet(np.full(n, 0.7), size=n)
    lengths = np.minimum(rng.geometric(0.3, rows), 30)
    touches = int(lengths.sum())
    position = np.arange(touches) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    code = np.empty(touches, dtype=np.int64)
    uniform = rng.random(touches)
    code[position == 0] = np.searchsorted(np.cumsum(start), uniform[position == 0])
    cumulative = np.cumsum(moves, axis=1)
    for step in range(1, int(lengths.max())):  # one vectorised draw per path position
        at = np.flatnonzero(position == step)
        previous = code[at - 1]
        code[at] = (uniform[at, None] > cumulative[previous]).sum(axis=1)
    code = np.minimum(code, n - 1)
    lift = rng.uniform(0.0, 0.08, n)
    journey = np.repeat(np.arange(rows), lengths)
    seen = np.zeros((rows, n), dtype=bool)
    seen[journey, code] = True
    converted = rng.random(rows) < 0.02 + seen.astype(float) @ lift
    value = np.where(converted, np.round(rng.lognormal(4.5, 0.8, rows), 2), 0.0)
    names = np.array(CHANNELS, dtype=object)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    with open(file, "w", newline="") as out:
        out.write("path,total_conversions,total_conversion_value,total_null\n")
        for j in range(rows):
            path = " > ".join(names[code[bounds[j] : bounds[j + 1]]])
            conv = int(converted[j])
            out.write(f"{path},{conv},{value[j]:.2f},{1 - conv}\n")
    return file


def with_crlf(file: Path) -> Path:
    """The same table with CRLF line ends, written once beside it."""
    crlf = file.with_name(f"{file.stem}_crlf.csv")
    if not crlf.exists():
        with file.open("rb") as src, crlf.open("wb") as out:
            for line in src:
                out.write(line.replace(b"\n", b"\r\n"))
    return crlf


def closedloop_command(file: Path) -> list[str]:
    search = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    exe = shutil.which("closedloop", path=search)
    if exe:
        return [exe, "paths", str(file), "--models", MODELS, "--sep", ">", "--format", "csv"]
    code = (
        "import sys; from pathlib import Path; "
        "from connector.attribution.paths import paths_report; "
        "sys.stdout.write(paths_report(Path(sys.argv[1]), sys.argv[2].split(','), '>', 'csv'))"
    )
    return [sys.executable, "-c", code, str(file), MODELS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--peer-python",
        required=True,
        help="interpreter of a virtualenv with ChannelAttribution and marketing-attribution-models",
    )
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for file in (generate(args.rows), with_crlf(generate(args.rows))):
        side_by_side(file, args.repeat, args.peer_python)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def side_by_side(file: Path, repeat: int, peer_python: str) -> None:
    rows = sum(1 for _ in file.open("rb")) - 1
    print(f"table: {file} ({file.stat().st_size / 1e6:.0f} MB, {rows:,} rows)")
    commands = {"closedloop paths": closedloop_command(file)}
    commands |= {name: [peer_python, "-c", script, str(file)] for name, script in PEERS.items()}
    print("closedloop:", " ".join(commands["closedloop paths"][:2]), "...")
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(repeat):  # in turn, so that a busy moment of the machine hits every tool
        for name, command in commands.items():
            runs[name].append(run_process(command, cwd=ROOT))
    for name, done in runs.items():
        wall = [r.wall for r in done]
        print(
            f"{name + ':':<20}best {min(wall):6.2f} s  median {statistics.median(wall):6.2f} s"
            f"  (CPU best {min(r.cpu for r in done):6.2f} s)"
            f"  peak RSS {max(r.peak_mb for r in done):6,.0f} MB"
        )
    best = {name: min(r.wall for r in done) for name, done in runs.items()}
    faster = min(PEERS, key=best.__getitem__)
    ours = best["closedloop paths"]
    for name in PEERS:
        print(f"ratio closedloop / {name} (best): {ours / best[name]:.2f}x")
    print(f"ratio closedloop / faster peer ({faster}, best): {ours / best[faster]:.2f}x")
    ours_out = runs["closedloop paths"][-1].stdout
    for name in PEERS:
        print(f"results vs {name}:")
        compare(ours_out, runs[name][-1].stdout)


def compare(ours_csv: str, theirs_json: str) -> None:
    ours = {
        f"{r['model']}|{r['channel']}": (float(r["conversions"]), float(r["value"]))
        for r in csv.DictReader(io.StringIO(ours_csv))
    }
    theirs = json.loads(theirs_json)
    for model in MODELS.split(","):
        keys = [k for k in theirs if k.startswith(model + "|")]
        gaps = []
        for what, i in (("conversions", 0), ("value", 1)):
            if any(theirs[k][i] is None for k in keys):
                continue  # a quantity this peer does not attribute
            total = sum(theirs[k][i] for k in keys)
            gap = max(abs(ours[k][i] - theirs[k][i]) for k in keys)
            gaps.append(f"{what} {gap:.6g} ({gap / total:.3%} of total)")
        print(f"  {model:<12} max |difference|: {'; '.join(gaps)}")


if __name__ == "__main__":
    main()
