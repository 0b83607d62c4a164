"""API calls per 10,000 changed touchpoint records, through the real clients to the emulators.

    PYTHONPATH=. python benchmarks/bench_touch_record_calls.py

For each CRM, 10,000 records are created (under people and, one in five, a deal), then all
changed, then all deleted, by the writers a sync uses; the emulator's request log counts the
calls each batch of work sent. Each count is compared with the minimum the APIs allow
(Salesforce: 200 records per sObject Collections call; HubSpot: 100 per batch upsert or
archive, 2,000 associations per v4 batch call and linked object) and the script fails if more
were sent. Above ``bulk_threshold`` (10,000) Salesforce switches to Bulk API 2.0: one job of
up to 100,000 records is a handful of calls, counted for 20,000 records.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.hubspot.adapter import HubSpotCrm  # noqa: E402
from adapters.hubspot.emulator import Emulator as HubSpotEmulator  # noqa: E402
from adapters.hubspot.settings import HubSpotSettings  # noqa: E402
from adapters.hubspot.touch_records import HubSpotTouchRecords  # noqa: E402
from adapters.salesforce.adapter import SalesforceCrm  # noqa: E402
from adapters.salesforce.emulator import Emulator as SalesforceEmulator  # noqa: E402
from adapters.salesforce.settings import SalesforceSettings  # noqa: E402
from adapters.salesforce.touch_records import SalesforceTouchRecords  # noqa: E402
from connector.kernel.records import TouchRecordDelete, TouchRecordWrite  # noqa: E402

DAY = datetime(2026, 11, 1, tzinfo=UTC)


def records(n: int, people: list[str], deals: list[str], person: str, deal: str,
            channel: str) -> list[TouchRecordWrite]:  # fmt: skip
    """``n`` records, one in five under a deal, with the shipped mappings' kind of values."""
    out = []
    for i in range(n):
        links = {
            person: people[i % len(people)],
            deal: deals[i % len(deals)] if i % 5 == 0 else None,
        }
        values = {
            "channel": channel,
            "occurred_at": "2026-11-02T10:00:00.000Z",
            "position": "Other",
        }
        out.append(TouchRecordWrite(f"cl-p-{i:08d}", values, links))
    return out


def measured(emu: Any, work: Any) -> tuple[int, Any]:
    before = len(emu.log)
    result = work()
    return len(emu.log) - before, result


def report(crm: str, what: str, calls: int, minimum: int) -> bool:
    verdict = "the minimum" if calls <= minimum else f"MORE than the minimum {minimum}"
    print(f"  {crm:<11}{what:<52}{calls:>5} calls ({verdict})", flush=True)
    return calls <= minimum


def salesforce(n: int) -> bool:
    with SalesforceEmulator(daily_limit=10_000_000) as emu:
        emu.seed_sample()
        emu.install_touchpoint_object()
        emu.bulk_polls_in_progress = 0
        settings = {**emu.adapter_settings(), "bulk_poll_interval": 0.01}
        crm = SalesforceCrm(SalesforceSettings(**settings))
        writer = SalesforceTouchRecords(crm)
        writer.schema(create=True)  # the preflight's describe, once per run
        people, deals = list(emu.records["Contact"]), list(emu.records["Opportunity"])

        def make(channel: str) -> list[TouchRecordWrite]:
            made = records(n, people, deals, "Contact", "Opportunity", channel)
            return [TouchRecordWrite(r.key, {"Channel__c": channel}, {"Lead": None, **r.links})
                    for r in made]  # fmt: skip

        per_call = math.ceil(n / 200)
        created_calls, created = measured(emu, lambda: writer.upsert(make("Email")))
        updated_calls, _ = measured(emu, lambda: writer.upsert(make("Paid Search")))
        gone = [TouchRecordDelete(r.key, r.crm_id) for r in created]
        deleted_calls, _ = measured(emu, lambda: writer.delete(gone))
        ok = all(r.ok for r in created)
        ok &= report(
            "Salesforce", f"{n:,} creates (sObject Collections upsert)", created_calls, per_call
        )
        ok &= report(
            "Salesforce", f"{n:,} updates (sObject Collections upsert)", updated_calls, per_call
        )
        ok &= report(
            "Salesforce", f"{n:,} deletes (sObject Collections delete)", deleted_calls, per_call
        )
        bulk_calls, bulk = measured(emu, lambda: writer.upsert(make("Email") + [
            TouchRecordWrite(f"cl-p-b{i:07d}", {"Channel__c": "Email"},
                             {"Lead": None, "Contact": people[0], "Opportunity": None})
            for i in range(n)
        ]))  # fmt: skip
        ok &= all(r.ok for r in bulk)
        # create, upload, close, one poll, successful results: one job per 100,000 records
        ok &= report("Salesforce", f"{2 * n:,} upserts above bulk_threshold (Bulk API 2.0)",
                     bulk_calls, 5)  # fmt: skip
        crm.close()
        return ok


def hubspot(n: int) -> bool:
    with HubSpotEmulator(rate_limit=None, daily_limit=None) as emu:
        people = [emu.add_contact({"email": f"p{i}@x.com"}, created_at=DAY) for i in range(500)]
        deals = [emu.add_deal({"dealname": f"D{i}"}, DAY, people[i : i + 1]) for i in range(50)]
        settings = {**emu.adapter_settings(), "rate_limit_share": 1.0}
        crm = HubSpotCrm(HubSpotSettings(**settings))
        writer = HubSpotTouchRecords(crm)
        writer.schema(create=True)  # created on the first sync, then found: once per run
        upserts = math.ceil(n / 100)
        linked = math.ceil(n / 2000) + math.ceil(n / 5 / 2000)  # contacts + deals
        created_calls, created = measured(
            emu, lambda: writer.upsert(records(n, people, deals, "contacts", "deals", "Email"))
        )
        ids = {r.key: r.crm_id for r in created}
        same_links = [
            TouchRecordWrite(r.key, {**r.values, "channel": "Paid Search"}, r.links, r.links)
            for r in records(n, people, deals, "contacts", "deals", "Email")
        ]
        updated_calls, _ = measured(emu, lambda: writer.upsert(same_links))
        gone = [TouchRecordDelete(k, i) for k, i in ids.items()]
        deleted_calls, _ = measured(emu, lambda: writer.delete(gone))
        ok = all(r.ok for r in created)
        ok &= report("HubSpot", f"{n:,} creates (batch upsert + v4 associations)", created_calls,
                     upserts + linked)  # fmt: skip
        ok &= report("HubSpot", f"{n:,} updates, links unchanged (batch upsert)", updated_calls,
                     upserts)  # fmt: skip
        ok &= report("HubSpot", f"{n:,} deletes (batch archive)", deleted_calls, upserts)
        crm.close()
        return ok


def count_calls(n: int = 10_000) -> None:
    print(f"API calls per {n:,} changed touchpoint records (real clients, emulators):", flush=True)
    ok = salesforce(n)
    ok &= hubspot(n)
    if not ok:
        raise SystemExit("more calls than the APIs' minimum")


if __name__ == "__main__":
    count_calls()
