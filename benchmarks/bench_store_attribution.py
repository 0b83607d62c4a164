"""Time the attribute step on a large SQLite store: load journeys, the models, write credits;
and mam (marketing-attribution-models) attributing the same journeys read from the same store.

    PYTHONPATH=. python benchmarks/bench_store_attribution.py            # 10 %, then 100 %
    PYTHONPATH=. python benchmarks/bench_store_attribution.py --scale 1  # only full scale
    PYTHONPATH=. python benchmarks/bench_store_attribution.py --rebuild  # build the store again
    PYTHONPATH=. python benchmarks/bench_store_attribution.py --cold     # store not in page cache
    PYTHONPATH=. python benchmarks/bench_store_attribution.py --scale 1 --repeat 3 \
        --peer-python /tmp/peers/bin/python                               # side by side with mam

Full scale: 1,000,000 contacts (8 % leads, half of them converted), 10,000,000 touchpoints (10 %
anonymous, 2 % unclassified, 3 % superseded clicks, ids in time order as an extract writes
them), 150,000 deals (100,000 won, 30,000 lost, 20,000 open; 1 % without an amount) with one to
four contacts of one account each, and the ``contact_journey`` rows the match step would write.
The store is generated with NumPy and written with sqlite3 ``executemany`` into the tables
:func:`connector.store.database.make_engine` creates, once per scale and seed, and kept as
``benchmarks/out/attribution_store_<scale>_<seed>.db``: reruns skip building.

Timed, each run in its own process so that its peak RSS is its own: what
:func:`connector.run.attribute.run_attribution` runs, step by step: ``load_journeys`` (90-day
window), ``credit`` for every model of ``--models`` (default: all eleven), ``write_credits``
(replacing the previous run's credits: from the second run on, the store holds a full credit
table to drop, as it does in production) and the commit. ``--cold`` first drops the store file
from the OS page cache (``posix_fadvise(DONTNEED)``), as after a reboot or when the store is
larger than the cache. Targets on the 2-core reference machine at full scale: <= 60 s, <= 2 GB
and <= 1.0x mam's wall time.

With ``--peer-python``, mam runs in turn with closedloop, ``--repeat`` times, each a whole
process timed from outside (wall time, CPU time and peak RSS from ``wait4``, interpreter start
and imports included). mam is never a dependency of closedloop: it runs in a throwaway
virtualenv of its own (``python3 -m venv /tmp/peers && /tmp/peers/bin/pip install
marketing-attribution-models``). The mam script does what a mam user with this store would do,
through its public API: it reads the tables a journey is made of with ``polars.read_database``
over sqlite3 (usable deals, deal contacts, contacts with their merges, and the touches with a
contact, a channel and not superseded), joins them in Polars into the same journeys closedloop
builds (a deal's buyers, a converted lead counted as its contact; touches inside the 90-day
window before the deal's milestone), one session row per (deal, touch) carrying its share of the
deal's amount, and runs ``MAM(..., format_type="session")`` with every model mam has that
closedloop has too: first click, last click, linear, position based, time decay (168 h
half-life, closedloop's 7 days), Markov and Shapley. It writes nothing back. Printed: best and
median wall time, CPU time and peak RSS of each, the ratio of closedloop's wall (and CPU) time
to mam's, and how far the channel totals of first touch, last touch and linear are apart (the
same journeys give the same totals but for touches at the same moment, which mam orders as it
finds them; the other models split differently). ``--models mam`` gives closedloop exactly
those seven models. Reading whole tables is most of mam's time: given closedloop's own SQL for
the buyers' touches instead (read through ``ix_touchpoint_journey``), it takes about two thirds
of it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processes import Run, run_process  # noqa: E402
from sqlmodel import Session  # noqa: E402

from connector.attribution import MODELS, ModelParams, credit  # noqa: E402
from connector.run.attribute import load_journeys
from connector.run.credits import write_credits
from connector.store.database import make_engine
from connector.store.models import credit_model_name_sql

OUT = Path(__file__).resolve().parent / "out"
SEED = 20261120
WINDOW_DAYS = 90
CHANNELS = (
    "Paid Search", "Organic Search", "Direct", "Email", "Paid Social", "Organic Social",
    "Display", "Referral", "Affiliates", "Video", "SMS", "Push",
)  # fmt: skip
POPULARITY = np.array([16, 14, 12, 10, 9, 8, 8, 7, 6, 4, 3, 3], dtype=np.float64)
UTM = (
    ("google", "cpc"), ("google", "organic"), ("(direct)", "(none)"), ("newsletter", "email"),
    ("linkedin", "paid_social"), ("linkedin", "social"), ("gdn", "display"), ("g2.com", "referral"),
    ("affiliate-net", "affiliate"), ("youtube", "cpc"), ("sms", "sms"), ("app", "push"),
)  # fmt: skip
DAY = 86_400 * 1_000_000  # microseconds
START = int(np.datetime64("2025-01-01T00:00:00", "us").astype(np.int64))
SPAN = 690 * DAY
ACCOUNT_SIZE = 8
BATCH = 200_000
CONTACT = ("id", "crm_object", "crm_id", "created_at", "updated_at", "account_id", "merged_into")
TOUCHPOINT = (
    "id", "source", "key", "occurred_at", "identity_kind", "identity_value", "utm_source",
    "utm_medium", "utm_campaign", "landing_page", "campaign_id", "preset_channel", "channel",
    "campaign_key", "contact_id", "superseded", "origin",
)  # fmt: skip
CONTACT_JOURNEY = (
    "contact_id", "first_touch_id", "lead_touch_id", "last_touch_id", "touch_count", "channel_path",
)  # fmt: skip
MAM_MODELS = (
    "first_touch", "last_touch", "linear", "position_based", "time_decay", "markov", "shapley",
)  # fmt: skip
MAM_SCRIPT = """
import json, sqlite3, sys
import polars as pl
from mam import MAM

store, window_days = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)


def read(sql):
    return pl.concat(list(pl.read_database(sql, db, iter_batches=True, batch_size=500_000)))


deals = read("SELECT id AS deal_id, crm_id AS deal_crm_id, amount_base, is_won, is_closed, "
             "created_at, closed_at, close_day_end, updated_at FROM deal "
             "WHERE amount_base IS NOT NULL AND amount_base >= 0")
deal_contacts = read("SELECT deal_crm_id, contact_crm_id FROM deal_contact")
contacts = read("SELECT id AS contact_id, crm_id, merged_into FROM contact")
touches = read("SELECT contact_id, id AS touch_id, occurred_at, channel FROM touchpoint "
               "WHERE contact_id IS NOT NULL AND channel <> '' AND NOT superseded")


def moment(column):
    return pl.col(column).cast(pl.String).str.to_datetime("%Y-%m-%d %H:%M:%S%.f")


merged = contacts.select(pl.col("crm_id").alias("merged_into"), pl.col("contact_id").alias("to"))
buyers = (
    deal_contacts.lazy()
    .join(contacts.lazy(), left_on="contact_crm_id", right_on="crm_id")
    .join(merged.lazy(), on="merged_into", how="left")
    .select("deal_crm_id", pl.coalesce("to", "contact_id").alias("contact_id"))
    .unique()
)
closed = pl.col("is_closed").cast(pl.Boolean)
milestones = deals.lazy().with_columns(
    pl.when(closed)
    .then(pl.coalesce(moment("close_day_end"), moment("closed_at"), moment("updated_at")))
    .otherwise(moment("created_at"))
    .alias("end"),
    (closed & pl.col("close_day_end").is_not_null()).alias("day_end"),
)
at = pl.col("occurred_at")
sessions = (
    buyers.join(milestones, on="deal_crm_id")
    .join(touches.lazy(), on="contact_id")
    .with_columns(moment("occurred_at").alias("occurred_at"))
    .filter(pl.when(pl.col("day_end")).then(at < pl.col("end")).otherwise(at <= pl.col("end")))
    .filter(at >= pl.col("end") - pl.duration(days=window_days))
    .select(
        pl.col("deal_id").alias("journey_id"),
        "occurred_at",
        "channel",
        pl.col("is_won").cast(pl.Boolean).alias("has_conversion"),
        (pl.col("amount_base") / pl.len().over("deal_id")).alias("value"),
    )
    .collect()
)
del deals, deal_contacts, contacts, touches
mam = MAM(sessions, format_type="session", channels_colname="channel",
          journey_with_conv_colname="has_conversion", datetime_colname="occurred_at",
          user_id_colname="journey_id", conversion_value_colname="value")
runs = {
    "first_touch": mam.run_first_click, "last_touch": mam.run_last_click,
    "linear": mam.run_linear, "position_based": mam.run_position_based,
    "time_decay": lambda: mam.run_time_decay(half_life_hours=168.0),
    "markov": mam.run_markov, "shapley": mam.run_shapley,
}
totals = {}
for model, run in runs.items():
    result = run()
    for channel, value in result.to_polars().iter_rows():
        totals[f"{model}|{channel}"] = value
print(json.dumps({"touches": sessions.height, "totals": totals}))
"""
DEAL = (
    "id", "crm_object", "crm_id", "name", "amount", "currency", "amount_base", "stage", "is_won",
    "is_closed", "created_at", "updated_at", "closed_at", "account_id", "stage_label",
    "stage_order",
)  # fmt: skip


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sqlite_times(us: np.ndarray[Any, Any]) -> list[str]:
    """Epoch microseconds -> the text SQLAlchemy stores in SQLite ('YYYY-MM-DD HH:MM:SS.ffffff')."""
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return [s.replace("T", " ") for s in text.tolist()]


def batches(n: int) -> Iterator[slice]:
    for start in range(0, n, BATCH):
        yield slice(start, min(start + BATCH, n))


def insert(db: sqlite3.Connection, table: str, columns: Sequence[str], rows: Any) -> None:
    marks = ", ".join("?" * len(columns))
    names = ", ".join(f'"{c}"' for c in columns)
    db.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


def build(path: Path, scale: float, seed: int = SEED) -> None:
    """Write a store of ``scale`` x (1M contacts, 10M touches, 150k deals) to ``path``."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_contacts, n_touches = int(1_000_000 * scale), int(10_000_000 * scale)
    n_won, n_lost, n_open = int(100_000 * scale), int(30_000 * scale), int(20_000 * scale)
    tmp = path.with_suffix(".building")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    make_engine(f"sqlite:///{tmp}").dispose()  # the real schema
    db = sqlite3.connect(tmp)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    indexes = list(
        db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'touchpoint' "
            "AND sql IS NOT NULL"
        )
    )
    for name, _ in indexes:  # rebuilt after the bulk load: much faster than row by row
        db.execute(f'DROP INDEX "{name}"')

    # 8 % leads, half of them converted into a (non-lead) contact.
    # Contacts: ids 1..n, eight per account, an account's people created within weeks.
    accounts = (n_contacts + ACCOUNT_SIZE - 1) // ACCOUNT_SIZE
    account_start = START + 60 * DAY + rng.integers(0, SPAN - 150 * DAY, accounts)
    created = np.repeat(account_start, ACCOUNT_SIZE)[:n_contacts]
    created += rng.exponential(20 * DAY, n_contacts).astype(np.int64)
    is_lead = rng.random(n_contacts) < 0.08
    converted = is_lead & (rng.random(n_contacts) < 0.5)
    contacts_pool = np.flatnonzero(~is_lead)
    merged = contacts_pool[rng.integers(0, len(contacts_pool), n_contacts)]
    crm_ids = [f"C{i:08d}" for i in range(n_contacts)]
    for part in batches(n_contacts):
        ids = np.arange(part.start, part.stop)
        times = sqlite_times(created[part])
        insert(
            db,
            "contact",
            CONTACT,
            zip(
                (ids + 1).tolist(),
                np.where(is_lead[part], "lead", "contact").tolist(),
                crm_ids[part],
                times,
                times,
                [f"A{a:07d}" for a in (ids // ACCOUNT_SIZE).tolist()],
                [
                    crm_ids[m] if c else None
                    for m, c in zip(merged[part], converted[part], strict=True)
                ],
                strict=True,
            ),
        )

    # Touchpoints: a converted lead's touches belong to its contact (the match step moved them).
    owners_pool = np.flatnonzero(~converted)
    owner = owners_pool[rng.integers(0, len(owners_pool), n_touches)]
    anonymous = rng.random(n_touches) < 0.10
    # Most touches come before a person's creation (research, then a form), some after.
    after = rng.random(n_touches) < 0.25
    gap = rng.exponential(np.where(after, 50 * DAY, 40 * DAY)).astype(np.int64)
    ts = created[owner] + np.where(after, gap, -gap)
    ts[anonymous] = START + rng.integers(0, SPAN, int(anonymous.sum()))
    ts = np.clip(ts, START, START + SPAN)
    order = np.argsort(ts, kind="stable")  # ids in time order, as incremental extracts give
    owner, anonymous, ts = owner[order], anonymous[order], ts[order]
    code = rng.choice(len(CHANNELS), n_touches, p=POPULARITY / POPULARITY.sum())
    unclassified = rng.random(n_touches) < 0.02
    superseded = rng.random(n_touches) < 0.03
    channel_names = np.array([*CHANNELS, ""], dtype=object)
    utm = np.array([*UTM, ("", "")], dtype=object)
    shown = np.where(unclassified, len(CHANNELS), code)
    for part in batches(n_touches):
        ids = np.arange(part.start, part.stop)
        who = owner[part]
        anon = anonymous[part]
        insert(
            db,
            "touchpoint",
            TOUCHPOINT,
            zip(
                (ids + 1).tolist(),
                ["ga4"] * len(ids),
                [f"{i:010d}" for i in ids.tolist()],
                sqlite_times(ts[part]),
                ["ga_client_id"] * len(ids),
                [
                    f"GA1.{i}" if a else f"GA1.c{w}"
                    for i, w, a in zip(ids.tolist(), who.tolist(), anon.tolist(), strict=True)
                ],
                utm[shown[part], 0].tolist(),
                utm[shown[part], 1].tolist(),
                [""] * len(ids),
                ["/"] * len(ids),
                [""] * len(ids),
                [""] * len(ids),
                channel_names[shown[part]].tolist(),
                [""] * len(ids),
                np.where(anon, -1, who + 1).tolist(),
                superseded[part].astype(np.int64).tolist(),
                ["ga4"] * len(ids),
                strict=True,
            ),
        )
    db.execute("UPDATE touchpoint SET contact_id = NULL WHERE contact_id = -1")
    for _, sql in indexes:
        db.execute(sql)

    # contact_journey as the match step computes it: first, lead-creation and last touch.
    kept = np.flatnonzero(~anonymous & ~superseded)
    by_contact = kept[np.argsort(owner[kept], kind="stable")]  # (contact, time, id) order
    who = owner[by_contact]
    starts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
    ends = np.r_[starts[1:], len(who)]
    before = ts[by_contact] <= created[who]
    n_before = np.add.reduceat(before.astype(np.int64), starts)
    lead = np.where(n_before > 0, by_contact[starts + n_before - 1] + 1, -1)
    insert(
        db,
        "contact_journey",
        CONTACT_JOURNEY,
        zip(
            (who[starts] + 1).tolist(),
            (by_contact[starts] + 1).tolist(),
            [None if x < 0 else x for x in lead.tolist()],
            (by_contact[ends - 1] + 1).tolist(),
            (ends - starts).tolist(),
            [""] * len(starts),
            strict=True,
        ),
    )

    # Deals: a primary contact plus up to three more of its account (some converted leads).
    n_deals = n_won + n_lost + n_open
    primary = rng.choice(contacts_pool, n_deals, replace=False)
    opened = created[primary] + rng.exponential(15 * DAY, n_deals).astype(np.int64)
    status = rng.permutation(np.repeat([0, 1, 2], [n_won, n_lost, n_open]))  # won, lost, open
    closed = opened + DAY + rng.exponential(35 * DAY, n_deals).astype(np.int64)
    amount = np.round(rng.lognormal(np.log(20_000), 0.8, n_deals), 2)
    no_amount = rng.random(n_deals) < 0.01
    opened_text, closed_text = sqlite_times(opened), sqlite_times(closed)
    stage = np.array(["closedwon", "closedlost", "qualifiedtobuy"], dtype=object)[status]
    deal_ids = [f"D{i:08d}" for i in range(n_deals)]
    closed_deal = status < 2
    amounts = [
        None if missing else a for missing, a in zip(no_amount, amount.tolist(), strict=True)
    ]
    insert(
        db,
        "deal",
        DEAL,
        zip(
            range(1, n_deals + 1),
            ["deal"] * n_deals,
            deal_ids,
            [f"Deal {i}" for i in range(n_deals)],
            amounts,
            ["USD"] * n_deals,
            amounts,
            stage.tolist(),
            (status == 0).astype(np.int64).tolist(),
            closed_deal.astype(np.int64).tolist(),
            opened_text,
            np.where(closed_deal, closed_text, opened_text).tolist(),
            [c if k else None for c, k in zip(closed_text, closed_deal, strict=True)],
            [f"A{p // ACCOUNT_SIZE:07d}" for p in primary.tolist()],
            stage.tolist(),
            [0] * n_deals,
            strict=True,
        ),
    )
    extra = rng.integers(0, 4, n_deals)
    deal_of = np.r_[np.arange(n_deals), np.repeat(np.arange(n_deals), extra)]
    person = np.r_[
        primary,
        np.repeat(primary // ACCOUNT_SIZE * ACCOUNT_SIZE, extra)
        + rng.integers(0, ACCOUNT_SIZE, int(extra.sum())),
    ]
    person = np.minimum(person, n_contacts - 1)
    pairs = np.unique(deal_of.astype(np.int64) * n_contacts + person)
    insert(
        db,
        "deal_contact",
        ("deal_crm_id", "contact_crm_id"),
        ((deal_ids[p // n_contacts], crm_ids[p % n_contacts]) for p in pairs.tolist()),
    )
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    tmp.rename(path)
    print(
        f"built {path.name}: {n_contacts:,} contacts, {n_touches:,} touchpoints, {n_deals:,} deals,"
        f" {len(pairs):,} deal contacts in {time.perf_counter() - started:.0f} s "
        f"({path.stat().st_size / 1e9:.1f} GB)",
        flush=True,
    )


def store_path(scale: float) -> Path:
    return OUT / f"attribution_store_{scale:g}_{SEED}.db"


def evict(path: Path) -> None:
    """Drop the store's pages from the OS page cache (this file only)."""
    for name in (path, Path(f"{path}-wal")):
        if name.exists():
            fd = os.open(name, os.O_RDONLY)
            try:
                os.fsync(fd)  # dirty pages cannot be dropped
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed(path: Path, scale: float, models: Sequence[str]) -> None:
    engine = make_engine(f"sqlite:///{path}")
    params = ModelParams()
    print(f"scale {scale:g}: {path.name} ({path.stat().st_size / 1e9:.1f} GB)", flush=True)
    with Session(engine) as session:
        t0 = time.perf_counter()
        journeys, touch_ids, deals = load_journeys(session, WINDOW_DAYS)
        t1 = time.perf_counter()
        print(
            f"  load_journeys   {t1 - t0:7.2f} s  {journeys.n_journeys:,} journeys, "
            f"{journeys.n_touches:,} touches; peak {peak_mb():,.0f} MB",
            flush=True,
        )
        credits = {}
        for model in models:
            started = time.perf_counter()
            credits[model] = credit(model, journeys, params)
            print(f"    {model:<16}{time.perf_counter() - started:6.2f} s", flush=True)
        t2 = time.perf_counter()
        print(f"  models          {t2 - t1:7.2f} s; peak {peak_mb():,.0f} MB", flush=True)
        written = write_credits(session, journeys, touch_ids, deals, credits)
        session.commit()
        t3 = time.perf_counter()
    engine.dispose()
    print(
        f"  write credits   {t3 - t2:7.2f} s  {written:,} rows "
        f"({written / (t3 - t2):,.0f} rows/s); peak {peak_mb():,.0f} MB",
        flush=True,
    )
    print(f"  total           {t3 - t0:7.2f} s; peak RSS {peak_mb():,.0f} MB", flush=True)


def check(path: Path) -> dict[str, float]:
    """Every model's fractions sum to 1 for each deal it credits, all models crediting the same
    deals; returns the channel totals (``model|channel`` -> credited amount)."""
    db = sqlite3.connect(path)
    model = credit_model_name_sql("c.model")
    counts = db.execute(
        f"SELECT {model}, COUNT(DISTINCT deal_id), SUM(fraction) FROM credit c GROUP BY c.model"
    ).fetchall()
    if len({deals for _, deals, _ in counts}) > 1:
        raise SystemExit(f"the models credit different deals: {counts}")
    for name, deals, total in counts:
        if abs(total - deals) > 1e-6 * deals:
            raise SystemExit(f"{name}: {deals} deals, fractions sum to {total}")
    totals = {
        f"{name}|{channel}": amount
        for name, channel, amount in db.execute(
            f"SELECT {model}, t.channel, SUM(c.amount) FROM credit c "
            "JOIN touchpoint t ON t.id = c.touchpoint_id GROUP BY c.model, t.channel"
        )
    }
    db.close()
    return totals


def side_by_side(scale: float, args: argparse.Namespace) -> None:
    """closedloop's attribute step and mam's script in turn, ``--repeat`` times."""
    path = store_path(scale)
    ours_cmd = [sys.executable, __file__, "--scale", str(scale), "--step", "time"]
    ours_cmd += ["--models", args.models]
    theirs_cmd = [args.peer_python, "-c", MAM_SCRIPT, str(path), str(WINDOW_DAYS)]
    ours: list[Run] = []
    theirs: list[Run] = []
    for _ in range(args.repeat):
        if args.cold:
            evict(path)
        ours.append(run_process(ours_cmd, capture=False))
        if args.peer_python:
            if args.cold:
                evict(path)
            theirs.append(run_process(theirs_cmd, capture=True))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"scale {scale:g}, whole processes (load average now {load}):")
    for name, runs in (("closedloop", ours), ("mam", theirs)):
        if runs:
            wall = [r.wall for r in runs]
            print(
                f"  {name + ':':<12}best {min(wall):6.2f} s"
                f"  median {statistics.median(wall):6.2f} s"
                f"  CPU best {min(r.cpu for r in runs):6.2f} s"
                f"  peak RSS {max(r.peak_mb for r in runs):7,.0f} MB"
            )
    totals = check(path)
    if not theirs:
        return
    for what in ("wall", "cpu"):
        best_ours = min(getattr(r, what) for r in ours)
        best_theirs = min(getattr(r, what) for r in theirs)
        print(f"  ratio closedloop / mam ({what}, best): {best_ours / best_theirs:.2f}x")
    peer = json.loads(theirs[-1].stdout)
    for model in ("first_touch", "last_touch", "linear"):
        keys = [k for k in peer["totals"] if k.startswith(model + "|")]
        if all(k in totals for k in keys):
            gap = max(abs(totals[k] - peer["totals"][k]) for k in keys)
            share = gap / sum(peer["totals"][k] for k in keys)
            print(f"  {model:<12} channel totals, max |closedloop - mam|: {gap:.6g} ({share:.2e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, action="append", help="fraction of full scale")
    parser.add_argument("--rebuild", action="store_true", help="build the stores again")
    parser.add_argument("--cold", action="store_true", help="time with the store out of cache")
    parser.add_argument(
        "--models",
        default="all",
        help="closedloop's models: comma-separated, 'all' (default) or 'mam' (those mam has)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each tool")
    parser.add_argument("--peer-python", help="interpreter of a virtualenv with mam installed")
    parser.add_argument("--step", choices=["build", "time"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    scales = args.scale or [0.1, 1.0]
    if args.step == "build":
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / ".gitignore").write_text("*\n")  # generated data stays out of git
        build(store_path(scales[0]), scales[0])
    elif args.step == "time":
        chosen = {"all": MODELS, "mam": MAM_MODELS}.get(args.models) or args.models.split(",")
        timed(store_path(scales[0]), scales[0], chosen)
    else:  # each step in its own process: the peak RSS printed is the timed step's alone
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for scale in scales:
            if args.rebuild or not store_path(scale).exists():
                command = [sys.executable, __file__, "--scale", str(scale), "--step", "build"]
                subprocess.run(command, check=True)
            side_by_side(scale, args)


if __name__ == "__main__":
    main()
