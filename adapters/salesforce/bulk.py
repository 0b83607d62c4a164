"""Bulk API 2.0 ingest jobs (update, upsert, delete): CSV up, the job polled here (so one failed
poll is retried, not fatal as in the client's own ``wait`` loop), per-record results back."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import Operation

from adapters.salesforce.connection import SalesforceConnection
from connector.kernel.records import WriteResult


class BulkRow(NamedTuple):
    """One row's outcome: its key (the Id, or the external id of an upsert), the record's Id."""

    key: str
    ok: bool
    error: str = ""
    record_id: str | None = None


def bulk_update(
    conn: SalesforceConnection, obj: str, rows: Sequence[tuple[str, dict[str, Any]]]
) -> list[WriteResult]:
    """One Bulk API 2.0 update job; ``rows`` are (Id, values)."""
    return [WriteResult(r.key, r.ok, r.error) for r in bulk_job(conn, obj, Operation.update, rows)]


def bulk_job(
    conn: SalesforceConnection,
    obj: str,
    operation: Operation,
    rows: Sequence[tuple[str, dict[str, Any]]],
    key_field: str = "Id",
) -> list[BulkRow]:
    """One Bulk API 2.0 ingest job over (key, values) rows, keyed by ``key_field`` (an upsert's
    external id; ``Id`` otherwise; a delete sends the Id alone), polled here."""
    columns = sorted({name for _, values in rows for name in values})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([key_field, *columns])
    for key, values in rows:
        writer.writerow([key, *(_csv_cell(values, c) for c in columns)])

    def jobs(sf: Salesforce) -> Any:
        return getattr(sf.bulk2, obj)

    external = key_field if operation == Operation.upsert else None
    job = conn.call(
        f"create bulk {operation} job",
        lambda sf: jobs(sf)._client.create_job(operation, external_id_field=external),
    )
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
                BulkRow(
                    key,
                    False,
                    f"bulk job {job_id} still {info['state']} after "
                    f"{conn.settings.bulk_timeout:.0f} s; outcome unknown",
                )
                for key, _ in rows
            ]
        time.sleep(conn.settings.bulk_poll_interval)
    if info["state"] != "JobComplete":
        error = f"bulk job {job_id} {info['state']}: {info.get('errorMessage', '')}".strip()
        return [BulkRow(key, False, error) for key, _ in rows]
    failed: dict[str, str] = {}
    if int(info.get("numberRecordsFailed", 0)):
        text = conn.call("read failed bulk rows", lambda sf: jobs(sf).get_failed_records(job_id))
        failed = {
            r.get(key_field) or r["sf__Id"]: _bulk_error(r["sf__Error"])
            for r in csv.DictReader(io.StringIO(text))
        }
    succeeded: dict[str, str] | None = None  # key -> Id, when read
    if operation == Operation.upsert or int(info.get("numberRecordsProcessed", 0)) < len(rows):
        text = conn.call("read bulk results", lambda sf: jobs(sf).get_successful_records(job_id))
        succeeded = {
            r.get(key_field) or r["sf__Id"]: r["sf__Id"] for r in csv.DictReader(io.StringIO(text))
        }
    return [
        BulkRow(key, False, failed[key])
        if key in failed
        else BulkRow(key, True, record_id=key if succeeded is None else succeeded[key])
        if succeeded is None or key in succeeded
        else BulkRow(key, False, f"bulk job {job_id} did not process this record")
        for key, _ in rows
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
