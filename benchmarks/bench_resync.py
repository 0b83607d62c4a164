"""A CRM of 12,000 contacts, synced twice through the real clients to the emulators.

    PYTHONPATH=. python benchmarks/bench_resync.py [--contacts 12000] [--crm salesforce]

The first sync writes every contact's fields and reads the written records back; its wall time
is printed with the share of the write-back step spent outside HTTP calls to the CRM (the store,
planning, audit). The second sync, of an unchanged portal, prints the CRM requests it sent (by
kind), how many of them read current values back and how many records it read (target: none,
a handful of requests in all).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import connector.run.sync as sync_module  # noqa: E402
from adapters.hubspot.adapter import HubSpotCrm  # noqa: E402
from adapters.salesforce.connection import SalesforceConnection  # noqa: E402
from connector.config.loader import load_config  # noqa: E402
from connector.demo.emulators import start_demo  # noqa: E402
from connector.demo.synthetic import generate  # noqa: E402
from connector.run.context import build_context  # noqa: E402
from connector.run.sync import run_sync  # noqa: E402

clock = {"http": 0.0, "writeback": 0.0}


def timed_call(original: Any) -> Any:
    def call(self: Any, *args: Any, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kw)
        finally:
            clock["http"] += time.perf_counter() - started

    return call


def timed_step(original: Any) -> Any:
    def step(ctx: Any) -> Any:
        clock["http"] = 0.0
        started = time.perf_counter()
        try:
            return original(ctx)
        finally:
            clock["writeback"] = time.perf_counter() - started

    return step


def report(
    label: str, status: str, wall: float, requests: list[Any], counts: dict[str, int]
) -> None:
    kinds = Counter(f"{r.method} {'/'.join(r.path.split('/')[-2:])}" for r in requests)
    step = clock["writeback"]
    outside = step - clock["http"]
    print(f"{label}: {status}, {wall:.1f} s; write-back {step:.1f} s, {outside:.1f} s of it "
          f"outside CRM HTTP calls ({outside / max(step, 1e-9):.0%})")  # fmt: skip
    reads = sum(
        1
        for r in requests
        if ("/objects/" in r.path and r.path.endswith("/batch/read"))
        or " WHERE Id IN (" in (r.arg("q") or "")
    )
    print(f"  CRM requests: {sum(kinds.values())}, reading values back: {reads}")
    read = {k: v for k, v in counts.items() if k.startswith(("contacts_read", "deals_read"))}
    print("  records read: " + ", ".join(f"{k} {v}" for k, v in sorted(read.items())))
    for kind, count in kinds.most_common():
        print(f"    {count:6d}  {kind}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=12_000)
    parser.add_argument("--crm", choices=("hubspot", "salesforce"), default="hubspot")
    args = parser.parse_args()
    n, kind = args.contacts, args.crm
    HubSpotCrm._call = timed_call(HubSpotCrm._call)  # type: ignore[method-assign]
    SalesforceConnection.call = timed_call(SalesforceConnection.call)  # type: ignore[method-assign]
    runners = sync_module._RUNNERS
    runners["writeback"] = timed_step(runners["writeback"])
    company = generate(seed=12, contacts=n, visits=n * 8, deals=n // 10)
    with tempfile.TemporaryDirectory() as folder:
        systems = start_demo(Path(folder) / "demo", kind, company)
        crm = systems.emulators[kind]
        try:
            for label in ("first sync", "unchanged re-sync"):
                crm.clear_log()
                ctx = build_context(load_config(systems.config_path))
                started = time.perf_counter()
                try:
                    run = run_sync(ctx)
                finally:
                    ctx.close()
                wall = time.perf_counter() - started
                report(label, run.status, wall, crm.requests(), ctx.counts)
        finally:
            systems.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
