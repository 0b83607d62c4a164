"""Touchpoint records at scale: plan and diff a million records; API calls per 10,000 changes.

    PYTHONPATH=. python benchmarks/bench_touch_records.py              # scale 0.1: ~1M records
    PYTHONPATH=. python benchmarks/bench_touch_records.py --rebuild    # build the store again
    PYTHONPATH=. python benchmarks/bench_touch_records.py --calls-only # only the API calls

The store is ``bench_store_attribution.py``'s at scale 0.1 (100,000 contacts, 1,000,000
touchpoints, 15,000 deals), copied once to ``benchmarks/out/touch_records_store_<scale>.db``
with the attribute step's credits for the four models the shipped mapping carries. Its
touches give about 870,000 person-level records and the deals' journeys about 200,000
opportunity-level ones: a million records with the shipped Salesforce mapping's fields.

Timed, each in its own process so that its peak RSS is its own, with
:func:`connector.run.touch_plan.plan` (everything a sync does before it audits and sends):

1. the first sync: nothing written yet, every record is a create;
2. the next sync: ``touch_record`` holds what closedloop wrote, 1 % of the touches changed.

Target on the 2-core reference machine: each <= 60 s and <= 1 GB.

Then the API calls per 10,000 changed records, sent through the real clients to the
emulators: Salesforce sObject Collections upsert and delete (200 records a call; Bulk API 2.0
above ``bulk_threshold``) and HubSpot batch upsert and archive (100 a call) with the v4
associations to contacts and deals (2,000 a call). Each is compared with the minimum the APIs
allow and the script fails if it sends more.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_store_attribution as attribution_store  # noqa: E402
from sqlmodel import Session  # noqa: E402

from connector.attribution import ModelParams, credit  # noqa: E402
from connector.config.loader import load_config  # noqa: E402
from connector.demo.emulators import enable_touchpoint_records, shipped_folder  # noqa: E402
from connector.kernel.records import FieldSpec, TouchSchema  # noqa: E402
from connector.run.attribute import load_journeys
from connector.run.context import build_context  # noqa: E402
from connector.run.credits import write_credits  # noqa: E402
from connector.run.touch_plan import digest, plan, rendered  # noqa: E402
from connector.store.database import make_engine  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
MODELS = ("first_touch", "last_touch", "linear", "w_shaped")
LIMIT_SECONDS, LIMIT_MB = 60.0, 1024.0
CHANGED = 10_000


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def store_path(scale: float) -> Path:
    return OUT / f"touch_records_store_{scale:g}.db"


def build(scale: float) -> None:
    """The attribution benchmark's store, its people named as Salesforce objects, credited."""
    source = attribution_store.store_path(scale)
    if not source.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / ".gitignore").write_text("*\n")
        attribution_store.build(source, scale)
    target = store_path(scale)
    shutil.copy(source, target)
    db = sqlite3.connect(target)
    db.execute("UPDATE contact SET crm_object = CASE crm_object WHEN 'lead' THEN 'Lead' "
               "ELSE 'Contact' END")  # fmt: skip
    db.execute("DELETE FROM credit")
    db.commit()
    db.close()
    engine = make_engine(f"sqlite:///{target}")
    with Session(engine) as session:
        journeys, touch_ids, deals = load_journeys(session, 90)
        credits = {m: credit(m, journeys, ModelParams()) for m in MODELS}
        write_credits(session, journeys, touch_ids, deals, credits)
        session.commit()
    engine.dispose()
    print(f"built {target.name} with {len(MODELS)} models' credits", flush=True)


def context(scale: float, folder: Path) -> Any:
    """A run context on the store with the shipped Salesforce mapping, switched on."""
    mapping = folder / "salesforce.yaml"
    shutil.copy(shipped_folder("mappings") / "salesforce.yaml", mapping)
    enable_touchpoint_records(mapping)
    mapping.write_text(mapping.read_text().replace("lookback_days: 365", "lookback_days: 3650"))
    config = {
        "store": {"url": f"sqlite:///{store_path(scale)}"},
        "crm": {"kind": "salesforce", "settings": {
            "instance_url": "https://example.my.salesforce.com", "session_id": "unused"}},
        "mappings": {"channels": str(shipped_folder("mappings") / "channels.yaml"),
                     "crm": str(mapping)},
        "sync": {"models": list(MODELS)},
    }  # fmt: skip
    path = folder / "closedloop.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return build_context(load_config(path))


def salesforce_schema() -> TouchSchema:
    """CL_Touchpoint__c as describe reports it once the package is deployed."""
    from adapters.salesforce import touchpoint_object as tp

    kinds = {"Text": "string", "DateTime": "datetime", "Number": "number", "Currency": "number"}
    fields = {
        f.name: FieldSpec(f.name, kinds[f.type], length=f.length)
        for f in tp.FIELDS
        if f.type != "Lookup" and f.name != tp.EXTERNAL_ID
    }
    return TouchSchema(tp.OBJECT_NAME, fields, ("Lead", "Contact", "Opportunity"))


def timed_plan(scale: float, second: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if not second:  # nothing written yet (the context creates the table afresh)
            with sqlite3.connect(store_path(scale)) as db:
                db.execute("DROP TABLE IF EXISTS touch_record")
        ctx = context(scale, Path(folder))
        if second:  # 1 % of the touches changed since closedloop wrote every record
            with ctx.engine.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE touchpoint SET landing_page = '/pricing?v=' || id WHERE id % 100 = 0"
                )
        started = time.perf_counter()
        result = plan(ctx, salesforce_schema())
        seconds = time.perf_counter() - started
        peak = peak_mb()
        records = len(result.changes) + result.unchanged
        actions = ", ".join(f"{result.count(a):,} {a}s" for a in ("create", "update", "delete"))
        verdict = "ok" if seconds <= LIMIT_SECONDS and peak <= LIMIT_MB else "OVER TARGET"
        label = "next sync (1 % of touches changed)" if second else "first sync"
        print(
            f"  {label:<36} {records:,} records planned and diffed in {seconds:5.1f} s, "
            f"peak RSS {peak:,.0f} MB ({verdict}): {actions}, {result.unchanged:,} unchanged",
            flush=True,
        )
        if not second:  # the creates' JSON, rendered part by part as the sync sends them
            started = time.perf_counter()
            rows = 0
            with ctx.engine.begin() as conn:  # as if each part had been sent and confirmed
                for part in rendered(ctx, result, 100_000):
                    rows += len(part)
                    conn.exec_driver_sql(
                        "INSERT INTO touch_record (key, crm_id, inputs_hash, values_hash, "
                        "written, person_id, run_id) VALUES (?, NULL, ?, ?, ?, '', 1)",
                        [(c.key, c.inputs, digest(c.new or ""), c.new) for c in part],
                    )
            print(
                f"  {'':<36} then their JSON rendered and stored, 100,000 at a time, in "
                f"{time.perf_counter() - started:5.1f} s ({rows:,} records), "
                f"peak RSS {peak_mb():,.0f} MB",
                flush=True,
            )
        else:  # back to the store as built
            with ctx.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE touchpoint SET landing_page = '/' WHERE id % 100 = 0")
        ctx.close()
        if verdict != "ok":
            raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="of the attribution store")
    parser.add_argument("--rebuild", action="store_true", help="build the store again")
    parser.add_argument("--calls-only", action="store_true", help="only count the API calls")
    parser.add_argument("--step", choices=["build", "first", "second"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "build":
        build(args.scale)
    elif args.step in {"first", "second"}:
        timed_plan(args.scale, args.step == "second")
    else:
        if not args.calls_only:
            steps = ["build"] if args.rebuild or not store_path(args.scale).exists() else []
            print(f"plan and diff, scale {args.scale:g} (each step in its own process):")
            for step in [*steps, "first", "second"]:
                command = [sys.executable, __file__, "--scale", str(args.scale), "--step", step]
                subprocess.run(command, check=True)
        from bench_touch_record_calls import count_calls

        count_calls(CHANGED)


if __name__ == "__main__":
    main()
