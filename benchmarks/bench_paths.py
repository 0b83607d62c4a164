"""Whole-process timing: ``closedloop paths`` vs ChannelAttribution on a 1M-row path table.

    python benchmarks/bench_paths.py [--rows 1000000] [--repeat 3]

Writes (once, fixed seed) ``benchmarks/out/paths_<rows>.csv``: one journey per row over 12
channels, channels drawn from a first-order chain, conversions depending on the channels seen,
``total_null = 1 - total_conversions``. Then times, each as a fresh process including
interpreter start and imports, ``closedloop paths FILE --models first_touch,last_touch,linear,
markov`` and a script running ChannelAttribution's ``heuristic_models`` and ``markov_model``
(with value and nulls) on the same file, alternating them ``--repeat`` times, and prints the
best and median times and their ratio, plus how far the two results are apart. The same table
is timed again with CRLF line ends (``paths_<rows>_crlf.csv``: what Python's csv module, Excel
and most exports write), which must cost no more than LF.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

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


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for file in (generate(args.rows), with_crlf(generate(args.rows))):
        side_by_side(file, args.repeat)


def side_by_side(file: Path, repeat: int) -> None:
    rows = sum(1 for _ in file.open("rb")) - 1
    print(f"table: {file} ({file.stat().st_size / 1e6:.0f} MB, {rows:,} rows)")
    ours_cmd = closedloop_command(file)
    theirs_cmd = [sys.executable, "-c", CA_SCRIPT, str(file)]
    print("closedloop:", " ".join(ours_cmd[:2]), "...")
    ours_times, theirs_times = [], []
    for _ in range(repeat):
        t, ours_out = timed(ours_cmd)
        ours_times.append(t)
        t, theirs_out = timed(theirs_cmd)
        theirs_times.append(t)
    best_ours, best_theirs = min(ours_times), min(theirs_times)
    for name, times in (("closedloop paths", ours_times), ("ChannelAttribution", theirs_times)):
        print(f"{name + ':':<20}best {min(times):6.2f} s  median {statistics.median(times):6.2f} s")
    print(f"ratio (closedloop / ChannelAttribution, best): {best_ours / best_theirs:.2f}x")
    compare(ours_out, theirs_out)


def compare(ours_csv: str, theirs_json: str) -> None:
    ours = {
        f"{r['model']}|{r['channel']}": (float(r["conversions"]), float(r["value"]))
        for r in csv.DictReader(io.StringIO(ours_csv))
    }
    theirs = json.loads(theirs_json)
    for model in MODELS.split(","):
        keys = [k for k in theirs if k.startswith(model + "|")]
        total = sum(theirs[k][0] for k in keys)
        gap = max(abs(ours[k][0] - theirs[k][0]) for k in keys)
        share = gap / total
        print(f"  {model:<12} max |difference| in conversions: {gap:.6g} ({share:.3%} of total)")


if __name__ == "__main__":
    main()
