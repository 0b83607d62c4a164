"""Audit rows per second of write-back (``field_write``): insert + settle at 10k, 100k, 1M changes.

    PYTHONPATH=. python benchmarks/bench_audit.py [--sizes 10000,100000,1000000]

Each size is one run of a fresh store: its changes (10 fields per record) are inserted
``pending`` as the write-back does before sending, then settled batch by batch (100 records,
one in fifty failed) as each batch comes back, through :mod:`connector.run.audit`. The run
settles against a store already holding an earlier run of the same size, so a settle that
scanned the run (or the store) would show. Per-change cost must not grow with the run: the
script prints microseconds per change and fails if the largest run's is more than twice the
smallest's. On SQLite (a temporary file) and on PostgreSQL when ``CLOSEDLOOP_BENCH_PG`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) is reachable: the tables are made in a
database of their own (``bench_audit``), dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, create_engine, func, select, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from connector.kernel.batches import chunks  # noqa: E402
from connector.run import audit  # noqa: E402
from connector.store import models  # noqa: E402
from connector.store.database import make_engine, table_of  # noqa: E402

FIELDS = 10
BATCH = 100  # records per write call (HubSpot's batch)
PG = os.environ.get("CLOSEDLOOP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_DB = "bench_audit"


def changes(run_id: int, records: int) -> Iterator[dict[str, Any]]:
    for r in range(records):
        for f in range(FIELDS):
            yield {"run_id": run_id, "crm_object": "contacts", "record_id": str(100 + r),
                   "field": f"closedloop_field_{f}", "old_value": None,
                   "new_value": f"value {r} {f}"}  # fmt: skip


def one_run(engine: Engine, run_id: int, records: int) -> tuple[float, float]:
    """Insert then settle a run's changes; (insert seconds, settle seconds)."""
    started = time.perf_counter()
    for part in chunks(changes(run_id, records), 100_000):
        audit.record(engine, part)
    inserted = time.perf_counter()
    fw = table_of(models.FieldWrite)
    for batch in chunks(range(records), BATCH):
        outcomes = [(str(100 + r), r % 50 != 0, "" if r % 50 else "VALIDATION_ERROR: bad")
                    for r in batch]  # fmt: skip
        with Session(engine) as session:
            audit.settle(session, run_id, outcomes, fw.c.crm_object == "contacts")
            session.commit()
    return inserted - started, time.perf_counter() - inserted


def measure(engine: Engine, records: int) -> dict[str, float]:
    one_run(engine, 1, records)  # an earlier run of the same records
    insert_s, settle_s = one_run(engine, 2, records)
    fw = table_of(models.FieldWrite)
    with engine.connect() as conn:
        left = conn.execute(
            select(func.count()).select_from(fw).where(fw.c.status == "pending")
        ).scalar_one()
    assert left == 0, f"{left} audit rows left pending"
    n = records * FIELDS
    return {"changes": n, "insert": n / insert_s, "settle": n / settle_s,
            "total": n / (insert_s + settle_s), "us": (insert_s + settle_s) / n * 1e6}  # fmt: skip


def report(backend: str, rows: list[dict[str, float]]) -> bool:
    print(f"\n{backend}: audit rows/s (insert pending, settle per batch of {BATCH} records)")
    print(f"{'changes':>10} {'insert/s':>10} {'settle/s':>10} {'total/s':>10} {'us/change':>10}")
    for r in rows:
        print(f"{int(r['changes']):>10,} {r['insert']:>10,.0f} {r['settle']:>10,.0f} "
              f"{r['total']:>10,.0f} {r['us']:>10.1f}")  # fmt: skip
    growth = rows[-1]["us"] / rows[0]["us"]
    print(f"per-change cost, largest run / smallest: {growth:.2f}x (target <= 2)")
    return growth <= 2.0


def sqlite_rows(sizes: list[int]) -> list[dict[str, float]]:
    out = []
    for changes_n in sizes:
        with tempfile.TemporaryDirectory() as folder:
            engine = make_engine(f"sqlite:///{folder}/audit.db")
            out.append(measure(engine, changes_n // FIELDS))
            engine.dispose()
    return out


def postgres_rows(sizes: list[int]) -> list[dict[str, float]] | None:
    try:
        admin = create_engine(PG, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {PG_DB}"))
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL here: SQLite only
        print(f"\nPostgreSQL not reachable ({type(exc).__name__}); SQLite only")
        return None
    out = []
    url = admin.url.set(database=PG_DB).render_as_string(hide_password=False)
    for changes_n in sizes:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {PG_DB}"))
        engine = make_engine(url)
        try:
            out.append(measure(engine, changes_n // FIELDS))
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {PG_DB}"))
    admin.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    ok = report("SQLite", sqlite_rows(sizes))
    pg = postgres_rows(sizes)
    if pg is not None:
        ok = report("PostgreSQL", pg) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
