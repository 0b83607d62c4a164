"""HubSpot write-back speed through hubspot-api-client: records/s against the portal's limit.

    PYTHONPATH=. python benchmarks/bench_hubspot_writeback.py [--contacts 10000] [--limit 190]

The HubSpot emulator runs in a process of its own (so the client's CPU is measured alone), set
to ``--limit`` requests per 10 s, with ``--contacts`` contacts and ten closedloop properties.
The adapter writes ten values to every contact, 100 per batch update, as the write-back does.
Printed: records/s, the client's CPU per request (this process's CPU time over its requests)
and the ratio to the portal's ceiling (``--limit`` / 10 s × 100 records); the target is ≥ 0.9.
10,000 contacts are 100 requests, inside one window's burst: above 1.0 the client, not the
portal, was the bound. The requests the emulator answered 429 are counted too (0 expected).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.hubspot.adapter import HubSpotCrm  # noqa: E402
from adapters.hubspot.emulator import Emulator  # noqa: E402
from adapters.hubspot.settings import HubSpotSettings  # noqa: E402
from connector.kernel.records import RecordUpdate  # noqa: E402

FIELDS = [f"cl_field_{i}" for i in range(10)]
DAY = datetime(2026, 11, 1, tzinfo=UTC)


def serve(contacts: int, limit: int, pipe: Connection) -> None:
    """The emulator's process: seed, start, send the URL and ids, serve until told to stop."""
    emu = Emulator(rate_limit=(limit, 10.0))
    for name in FIELDS:
        emu.add_property("contacts", name, group_name="closedloop")
    ids = [emu.add_contact({"email": f"p{i}@example.com"}, DAY) for i in range(contacts)]
    with emu:
        pipe.send((emu.url, emu.access_token, ids))
        pipe.recv()
        pipe.send(len([r for r in emu.requests() if r.status == 429]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=190)
    args = parser.parse_args()
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(args.contacts, args.limit, theirs))
    server.start()
    url, token, ids = ours.recv()
    settings = HubSpotSettings(
        access_token=token, host=url, tier="enterprise", rate_limit_share=1.0
    )
    updates = [
        RecordUpdate(crm_id, {f: f"Paid Search {n % 7} / {f}" for f in FIELDS})
        for n, crm_id in enumerate(ids)
    ]
    with HubSpotCrm(settings) as crm:
        crm.describe_fields("contacts")  # connection up, limiter sized by the portal
        before_calls, cpu, wall = crm.api_calls(), time.process_time(), time.perf_counter()
        results = crm.write("contacts", updates)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        calls = crm.api_calls() - before_calls
    ours.send("stop")
    refused = ours.recv()
    server.join()
    written = sum(r.ok for r in results)
    ceiling = args.limit / 10 * 100
    rate = written / wall
    print(
        f"HubSpot write-back: {written:,} of {len(updates):,} contacts in {wall:.2f} s, "
        f"{calls} requests ({refused} answered 429), portal limit {args.limit} / 10 s"
    )
    print(
        f"records/s: {rate:,.0f}   ceiling: {ceiling:,.0f}   ratio: {rate / ceiling:.2f} "
        "(target >= 0.90)"
    )
    print(f"client CPU: {cpu:.2f} s, {cpu / calls * 1000:.1f} ms per request")
    return 0 if written == len(updates) and rate >= 0.9 * ceiling else 1


if __name__ == "__main__":
    sys.exit(main())
