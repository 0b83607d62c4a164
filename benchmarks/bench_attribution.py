"""Time every attribution model on synthetic journeys and report peak memory.

    python benchmarks/bench_attribution.py            # 10 % scale, then full scale
    python benchmarks/bench_attribution.py --scale 1  # only 1,000,000 journeys / ~10M touches

Each scale runs in its own process so that its peak RSS (``resource.getrusage``) is its own.
Target on the 2-core reference machine: every model <= 60 s and <= 2 GB at full scale.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.attribution import MODELS, Journeys, credit  # noqa: E402

CHANNELS = (
    "Paid Search", "Organic Search", "Direct", "Email", "Paid Social", "Organic Social",
    "Display", "Referral", "Affiliates", "Video", "SMS", "Push",
)  # fmt: skip
POPULARITY = np.array([16, 14, 12, 10, 9, 8, 8, 7, 6, 4, 3, 3], dtype=np.float64)
DAY = 86_400.0


def synthetic(journeys: int, mean_touches: float, seed: int = 42) -> Journeys:
    """Journeys with ~``mean_touches`` touches each, roles, timestamps and conversions."""
    rng = np.random.default_rng(seed)
    lengths = rng.poisson(mean_touches, journeys).astype(np.int64)
    lengths[rng.random(journeys) < 0.01] = 0  # a few deals without touches
    offsets = np.zeros(journeys + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    touches = int(offsets[-1])
    journey = np.repeat(np.arange(journeys), lengths)
    channel = rng.choice(len(CHANNELS), touches, p=POPULARITY / POPULARITY.sum()).astype(np.int32)
    gaps = rng.exponential(3 * DAY, touches)
    elapsed = np.cumsum(gaps)
    start = np.concatenate([[0.0], elapsed])[offsets[:-1]]
    ts = 1.7e9 + elapsed - start[journey]
    last = np.where(lengths > 0, offsets[1:] - 1, 0)
    end_ts = np.where(lengths > 0, ts[last] if touches else 0.0, 1.7e9) + DAY
    has = lengths > 0
    lead_rel = (rng.random(journeys) * np.maximum(lengths, 1)).astype(np.int64)
    opp_rel = lead_rel + (rng.random(journeys) * (lengths - lead_rel)).astype(np.int64)
    lead_pos = np.where(has & (rng.random(journeys) < 0.8), offsets[:-1] + lead_rel, -1)
    opp_pos = np.where(has & (rng.random(journeys) < 0.6), offsets[:-1] + opp_rel, -1)
    email = np.bincount(journey, weights=(channel == 3), minlength=journeys) > 0
    search = np.bincount(journey, weights=(channel == 0), minlength=journeys) > 0
    converted = rng.random(journeys) < 0.04 + 0.06 * email + 0.05 * search
    return Journeys(
        offsets=offsets,
        channel=channel,
        ts=ts,
        end_ts=end_ts,
        lead_pos=lead_pos.astype(np.int64),
        opp_pos=opp_pos.astype(np.int64),
        converted=converted,
        channels=CHANNELS,
        direct=CHANNELS.index("Direct"),
    )


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(scale: float) -> None:
    started = time.perf_counter()
    j = synthetic(int(1_000_000 * scale), mean_touches=10.1)
    print(
        f"scale {scale:g}: {j.n_journeys:,} journeys, {j.n_touches:,} touches "
        f"(built in {time.perf_counter() - started:.1f} s, peak {peak_mb():.0f} MB)",
        flush=True,
    )
    print(f"  {'model':<16}{'seconds':>9}{'peak RSS MB':>13}", flush=True)
    total = 0.0
    for model in MODELS:
        started = time.perf_counter()
        c = credit(model, j)
        elapsed = time.perf_counter() - started
        total += elapsed
        assert abs(c.sum() - np.count_nonzero(j.lengths)) < 1e-6 * j.n_journeys, model
        del c
        print(f"  {model:<16}{elapsed:>9.2f}{peak_mb():>13.0f}", flush=True)
    print(f"  {'all models':<16}{total:>9.2f}{peak_mb():>13.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, action="append", help="fraction of 1M journeys")
    args = parser.parse_args()
    scales = args.scale or [0.1, 1.0]
    if len(scales) == 1:
        run(scales[0])
        return
    for scale in scales:  # one process per scale: clean peak-memory figures
        subprocess.run([sys.executable, __file__, "--scale", str(scale)], check=True)


if __name__ == "__main__":
    main()
