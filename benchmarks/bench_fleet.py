"""Accounts synced per hour by 1, 2 and 4 ``closedloop worker`` processes, and the shared rate
limiter's cost per request.

    PYTHONPATH=. python benchmarks/bench_fleet.py [--accounts 4] [--contacts 2000]

Needs RabbitMQ (127.0.0.1:5672, guest), Redis (127.0.0.1:6379, DB 5) and PostgreSQL
(``CLOSEDLOOP_TEST_PG``, default the ``test`` database on 127.0.0.1:5432). Each round starts
fresh demo companies (the demo's size by default: 2,000 contacts, 20,000 GA4 sessions, 300
deals, each account with its own emulators), migrates their schemas, starts the workers, queues
every account at once and times the first sync of all of them (first task queued to last run
finished). The limiter's cost is the time one request waits for Redis to say yes (a bucket that
never runs out), beside the in-process limiter's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kombu import Connection  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from connector.config.loader import dump_yaml  # noqa: E402
from connector.demo.emulators import start_demo  # noqa: E402
from connector.demo.synthetic import Company, generate  # noqa: E402
from connector.fleet.accounts import load_fleet  # noqa: E402
from connector.fleet.limiter import RedisBucket  # noqa: E402
from connector.fleet.schemas import migrate_accounts  # noqa: E402
from connector.fleet.tasks import enqueue  # noqa: E402
from connector.kernel.ratelimit import RateLimiter  # noqa: E402

PG = os.environ.get("CLOSEDLOOP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BROKER = "amqp://guest:guest@127.0.0.1:5672/closedloop_test"
REDIS = "redis://127.0.0.1:6379/5"
CLOSEDLOOP = str(Path(sys.executable).with_name("closedloop"))


def one_round(root: Path, workers: int, accounts: int, company: Company) -> float:
    """Seconds for ``workers`` workers to sync ``accounts`` fresh accounts once."""
    tag = uuid.uuid4().hex[:8]
    names = [f"bench{i}_{tag}" for i in range(accounts)]
    demos = [start_demo(root / "accounts" / name, company=company) for name in names]
    fleet_file = root / "fleet.yaml"
    fleet_file.write_text(dump_yaml({
        "broker_url": BROKER, "redis_url": REDIS, "store_url": PG, "queue": f"bench_{tag}",
    }))  # fmt: skip
    fleet = load_fleet(fleet_file)
    migrate_accounts(fleet, names)
    env = {**os.environ, "CLOSEDLOOP_FLEET": str(fleet_file)}  # secrets: each demo's file
    logs = (root / "workers.log").open("ab")
    procs = [
        subprocess.Popen([CLOSEDLOOP, "worker"], env=env, stdout=logs, stderr=logs)
        for _ in range(workers)
    ]
    engine = create_engine(PG)
    try:
        time.sleep(8)  # the workers import and connect; not part of the figure
        start = time.monotonic()
        for name in names:
            enqueue(fleet, name)
        pending = set(names)
        while pending:
            time.sleep(0.5)
            with engine.connect() as conn:
                for name in list(pending):
                    status = conn.execute(
                        text(f'SELECT status FROM "account_{name}".sync_run ORDER BY id DESC')
                    ).scalar()
                    if status not in {None, "running"}:
                        pending.discard(name)
        return time.monotonic() - start
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
        logs.close()
        with Connection(BROKER) as broker:
            broker.default_channel.queue_delete(f"bench_{tag}")
        for demo in demos:
            demo.stop()
        with engine.begin() as conn:
            for name in names:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "account_{name}" CASCADE'))
        engine.dispose()
        shutil.rmtree(root / "accounts")


def limiter_cost(n: int = 5000) -> tuple[float, float]:
    """Microseconds per granted request: Redis-shared, in-process."""
    bucket, key = RedisBucket(REDIS), f"bench:{uuid.uuid4().hex}"
    start = time.perf_counter()
    for _ in range(n):
        bucket.take(key, 10**9, 60.0)
    shared = (time.perf_counter() - start) / n * 1e6
    bucket.close()
    local = RateLimiter("bench", 10**9, 60.0)
    start = time.perf_counter()
    for _ in range(n):
        local.acquire()
    return shared, (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    company = generate(contacts=args.contacts)  # the demo company when 2,000
    print(f"{args.accounts} accounts of {args.contacts} contacts each; {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for workers in (int(w) for w in args.workers.split(",")):
            seconds = one_round(Path(folder), workers, args.accounts, company)
            per_hour = args.accounts / seconds * 3600
            print(f"{workers} worker(s): {args.accounts} first syncs in {seconds:.1f} s = "
                  f"{per_hour:.0f} accounts/hour ({seconds / args.accounts * workers:.1f} "
                  f"worker-seconds per account)")  # fmt: skip
    shared, local = limiter_cost()
    print(f"rate limiter per request: {shared:.0f} µs shared through Redis, {local:.1f} µs in "
          "process")  # fmt: skip


if __name__ == "__main__":
    main()
