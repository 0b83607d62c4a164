"""Benchmark the offline CSV import: 1,000,000 spend rows and 1,000,000 touchpoint rows.

    PYTHONPATH=. python benchmarks/bench_csv_import.py [--rows 1000000] [--regenerate]
        [--spend-rows N] [--store postgresql+psycopg://user@host/db]  # emptied first

The files are generated once with a fixed seed into ``benchmarks/out/`` and reused. Prints rows
per second of parsing through :class:`CsvFilesSource`, then of importing both files into a new
store (SQLite, or the PostgreSQL database given, whose closedloop tables are dropped first)
through the extract step itself (:func:`connector.run.extract.extract_sources`: the
rows staged and merged through :class:`connector.store.staged.Staged`), twice: the second
import of the same files must leave the row counts and contents unchanged. Each stream prints its
whole time from the file (parse included) and, apart, the time spent storing (staging the rows,
bound as the DB-API takes them, and merging them into the table; the merges run in a second
thread while the file is read, so the two overlap). Peak RSS is the process's so far
(the database server's memory is not in it). Targets: storing >= 100,000 touchpoints/s and
10,000,000 touchpoints from the file in under 3 minutes.
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from adapters.csv_files.adapter import CsvFilesSource
from connector.config.loader import LoadedConfig
from connector.config.settings import Config, CrmConfig, CurrencyConfig
from connector.kernel.timeutil import utcnow
from connector.run.context import RunContext
from connector.run.extract import extract_sources
from connector.store.database import make_engine
from connector.store.staged import Staged

OUT = Path(__file__).parent / "out"
SEED = 20261120
TODAY = date(2026, 11, 20)
CHANNELS = [
    ("Events", "trade_show", "offline", "SaaStr Annual 2026"),
    ("Events", "trade_show", "offline", "Dreamforce 2026"),
    ("Webinar", "webinar", "online_event", "Attribution 101 webinar"),
    ("Outbound Calls", "sales_call", "phone", "Q4 enterprise outreach"),
    ("Direct Mail", "direct_mail", "print", "Holiday gift box"),
]
PLATFORMS = ["trade_show", "print", "podcast"]


def generate_touchpoints(path: Path, rows: int, rng: random.Random) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["email", "crm_id", "occurred_at", "channel", "campaign", "source", "medium", "note"]
        )
        for n in range(rows):
            person = rng.randrange(200_000)
            channel, source, medium, campaign = CHANNELS[n % len(CHANNELS)]
            day = TODAY - timedelta(days=rng.randrange(730))
            when = day.isoformat() if n % 3 else f"{day.isoformat()}T{n % 24:02d}:{n % 60:02d}:00Z"
            email, crm_id = (
                (f"Person.{person}@Example.com ", "") if n % 10 else ("", f"003{person:012d}")
            )
            out.writerow(
                [
                    email,
                    crm_id,
                    when,
                    channel,
                    campaign,
                    source,
                    medium,
                    "badge scan" if n % 7 else "",
                ]
            )


def generate_spend(path: Path, rows: int, rng: random.Random) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "platform",
                "campaign_id",
                "campaign",
                "date",
                "cost",
                "currency",
                "clicks",
                "impressions",
                "channel",
            ]
        )
        for n in range(rows):
            campaign = n % 1000
            day = TODAY - timedelta(days=n // 1000)
            out.writerow(
                [
                    PLATFORMS[campaign % 3],
                    f"off-{campaign}",
                    f"Offline campaign {campaign}",
                    day.isoformat(),
                    f"{rng.uniform(10, 5000):.2f}",
                    "USD" if campaign % 4 else "EUR",
                    rng.randrange(500),
                    rng.randrange(50_000),
                    "Events",
                ]
            )


def timed(label: str, rows: Callable[[], Iterable[object]]) -> None:
    start = time.perf_counter()
    count = sum(1 for _ in rows())
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = count / seconds
    print(f"{label:12s} {count:>10,d} rows in {seconds:6.2f} s = {rate:>10,.0f} rows/s", end="")
    print(f"; peak RSS {peak_mb:,.0f} MB")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class StreamClock:
    """A progress sink that times each stream the extract step reads (one task per stream),
    and the part of it spent in :class:`Staged` (storing), and of that the part in the second
    thread (merges beside the parse)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        self.storing: dict[str, float] = {}
        self.beside: dict[str, float] = {}
        self.current = ""
        for method in ("add", "missing", "merge"):
            setattr(Staged, method, self.timed(getattr(Staged, method)))

    def timed(self, method: Any) -> Any:
        clock = self

        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                clock.storing[clock.current] = clock.storing.get(clock.current, 0.0) + spent
                if threading.current_thread() is not threading.main_thread():
                    clock.beside[clock.current] = clock.beside.get(clock.current, 0.0) + spent

        call.original = getattr(method, "original", method)  # type: ignore[attr-defined]
        return call

    def release(self) -> None:
        for method in ("add", "missing", "merge"):
            setattr(Staged, method, getattr(Staged, method).original)

    def task(self, name: str, total: int | None = None) -> Any:
        clock, started = self, time.perf_counter()
        clock.rows[name], clock.current = 0, name

        class Task:
            def advance(self, n: int = 1) -> None:
                clock.rows[name] += n

            def finish(self) -> None:
                clock.seconds[name] = time.perf_counter() - started

        return Task()


def import_context(engine: Engine, source: CsvFilesSource, clock: StreamClock) -> RunContext:
    """What the extract step needs of a run: the store, the source, currencies and progress."""
    config = Config(
        crm=CrmConfig(kind="hubspot"), currency=CurrencyConfig(base="USD", rates={"EUR": 1.08})
    )
    loaded = LoadedConfig(OUT / "closedloop.yaml", config, crm_settings=None, sources={})
    return RunContext(
        loaded=loaded,
        engine=engine,
        crm=None,
        sources={"offline": source},
        mapping=None,  # the mapping, rules and campaigns are not read by extract_sources
        classifier=None,
        campaigns=None,
        progress=clock,
    )


def store_state(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """Row count and a content digest of each table the import writes."""
    queries = {
        # in cents: a float SUM depends on the order rows are read, which updates change
        "spend": (
            "SELECT COUNT(*), MAX(id), SUM(CAST(ROUND(cost * 100) AS BIGINT)), "
            "SUM(CAST(ROUND(cost_base * 100) AS BIGINT)), SUM(clicks) FROM spend"
        ),
        "touchpoint": (
            "SELECT COUNT(*), MAX(id), COUNT(DISTINCT identity_value), SUM(LENGTH(key)), "
            "COUNT(DISTINCT occurred_at), MIN(occurred_at), MAX(occurred_at) FROM touchpoint"
        ),
    }
    with engine.connect() as conn:
        return {table: tuple(conn.execute(text(sql)).one()) for table, sql in queries.items()}


def new_store(url: str | None) -> Engine:
    if url is None:
        path = OUT / "csv_import_store.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    engine = make_engine(url)
    SQLModel.metadata.drop_all(engine)
    SQLModel.metadata.create_all(engine)
    return engine


def import_into_store(source: CsvFilesSource, url: str | None) -> None:
    engine = new_store(url)
    print(f"store: {engine.dialect.name}")
    states = []
    for attempt in ("import", "re-import"):
        clock = StreamClock()
        try:
            extract_sources(import_context(engine, source, clock))
        finally:
            clock.release()
        for stream in ("spend", "touchpoints"):
            name = f"offline: {stream}"
            count, seconds, storing = clock.rows[name], clock.seconds[name], clock.storing[name]
            beside = clock.beside.get(name, 0.0)
            print(
                f"{attempt:9s} {stream:11s} {count:>10,d} rows in {seconds:6.2f} s = "
                f"{count / seconds:>10,.0f} rows/s from the file; storing {storing:6.2f} s = "
                f"{count / storing:>10,.0f} rows/s ({beside:.2f} s of it beside the parse); "
                f"peak RSS {peak_mb():,.0f} MB"
            )
        states.append(store_state(engine))
        counts = ", ".join(f"{table} {state[0]:,d}" for table, state in states[-1].items())
        print(f"{'':9s} rows in the store after the {attempt}: {counts}")
    engine.dispose()
    if states[0] != states[1]:
        raise SystemExit(f"the re-import changed the store: {states[0]} -> {states[1]}")
    print("re-import changed nothing (row counts, ids and content digests equal)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--spend-rows", type=int, help="spend rows (default: --rows)")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--store", help="a store URL to empty and load (default: new SQLite)")
    parser.add_argument("--no-parse", action="store_true", help="skip timing the parse alone")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    touch_file = OUT / f"offline_touchpoints_{args.rows}.csv"
    spend_rows = args.spend_rows or args.rows
    spend_file = OUT / f"offline_spend_{spend_rows}.csv"
    rng = random.Random(SEED)
    if args.regenerate or not touch_file.exists():
        generate_touchpoints(touch_file, args.rows, rng)
    if args.regenerate or not spend_file.exists():
        generate_spend(spend_file, spend_rows, rng)
    source = CsvFilesSource(
        CsvFilesSource.Settings(touchpoints_file=touch_file, spend_file=spend_file)
    )
    if not args.no_parse:
        since = utcnow()
        timed("spend", lambda: source.spend(since))
        timed("touchpoints", lambda: source.touchpoints(since))
        print(f"rejected rows: {sum(source.rejected_count.values()):,d}")
    import_into_store(source, args.store)


if __name__ == "__main__":
    main()
