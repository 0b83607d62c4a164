"""Bulk API 2.0 update jobs: CSV up, the job polled here (so one failed poll is retried,
not fatal as in the client's own ``wait`` loop), per-record results back."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from typing import Any

from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import Operation

from adapters.salesforce.connection import SalesforceConnection
from connector.kernel.records import WriteResult


def bulk_update(
    conn: SalesforceConnection, obj: str, rows: Sequence[tuple[str, dict[str, Any]]]
) -> list[WriteResult]:
    """One Bulk API 2.0 update job, polled here (a transient poll failure is retried)."""
    columns = sorted({name for _, values in rows for name in values})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Id", *columns])
    for rid, values in rows:
        writer.writerow([rid, *(_csv_cell(values, c) for c in columns)])

    def jobs(sf: Salesforce) -> Any:
        return getattr(sf.bulk2, obj)

    job = conn.call("create bulk job", lambda sf: jobs(sf)._client.create_job(Operation.update))
    job_id = job["id"]
    conn.call(
        "upload bulk data", lambda sf: jobs(sf)._client.upload_job_data(job_id, out.getvalue())
    )
    conn.call("close bulk job", lambda sf: jobs(sf)._client.close_job(job_id))
    deadline = time.monotonic() + conn.settings.bulk_timeout
    while True:
        info = conn.call("poll bulk job", lambda sf: jobs(sf)._client.get_job(job_id, False))
        if info["state"] in {"JobComplete", "Failed", "Aborted"}:
            break
        if time.monotonic() > deadline:
            return [
                WriteResult(
                    rid,
                    False,
                    f"bulk job {job_id} still {info['state']} after "
                    f"{conn.settings.bulk_timeout:.0f} s; outcome unknown",
                )
                for rid, _ in rows
            ]
        time.sleep(conn.settings.bulk_poll_interval)
    if info["state"] != "JobComplete":
        error = f"bulk job {job_id} {info['state']}: {info.get('errorMessage', '')}".strip()
        return [WriteResult(rid, False, error) for rid, _ in rows]
    failed: dict[str, str] = {}
    if int(info.get("numberRecordsFailed", 0)):
        text = conn.call("read failed bulk rows", lambda sf: jobs(sf).get_failed_records(job_id))
        failed = {
            r.get("Id") or r["sf__Id"]: _bulk_error(r["sf__Error"])
            for r in csv.DictReader(io.StringIO(text))
        }
    succeeded: set[str] | None = None
    if int(info.get("numberRecordsProcessed", 0)) < len(rows):
        text = conn.call("read bulk results", lambda sf: jobs(sf).get_successful_records(job_id))
        succeeded = {r.get("Id") or r["sf__Id"] for r in csv.DictReader(io.StringIO(text))}
    return [
        WriteResult(rid, False, failed[rid])
        if rid in failed
        else WriteResult(rid, True)
        if succeeded is None or rid in succeeded
        else WriteResult(rid, False, f"bulk job {job_id} did not process this record")
        for rid, _ in rows
    ]


def _bulk_error(text: str) -> str:
    """``CODE:message:Field1,Field2 --`` (Bulk API 2.0 sf__Error) -> ``CODE: message``."""
    code, _, rest = text.removesuffix(" --").partition(":")
    message, _, fields = rest.rpartition(":")
    if not message or " " in fields:
        message = rest
    return f"{code}: {message}"


def _csv_cell(values: dict[str, Any], column: str) -> str:
    """Bulk CSV: an empty cell leaves a field alone, ``#N/A`` clears it."""
    if column not in values:
        return ""
    value = values[column]
    if value is None:
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
