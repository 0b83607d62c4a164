"""Prometheus metrics of a closedloop process (exposed by ``closedloop serve`` on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUN_STATUSES = ("succeeded", "partial", "failed", "incomplete", "interrupted", "killed")  # final
RUNS = Counter("closedloop_runs", "Sync runs by final status", ["status"])
RUN_DURATION = Histogram(
    "closedloop_run_duration_seconds",
    "Duration of finished runs, per job",
    ["job"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
)
RUNS_IN_PROGRESS = Gauge("closedloop_runs_in_progress", "Runs going on now, per job", ["job"])
RECORDS_READ = Counter("closedloop_records_read", "Records read", ["system"])
RECORDS_WRITTEN = Counter("closedloop_records_written", "CRM records written", ["system"])
RECORDS_FAILED = Counter("closedloop_records_failed", "CRM records whose write failed", ["system"])
API_CALLS = Counter("closedloop_api_calls", "HTTP requests sent to external APIs", ["system"])
RETRIES = Counter("closedloop_retries", "Transient errors retried")
RATE_LIMIT_WAIT = Counter(
    "closedloop_rate_limit_wait_seconds", "Seconds spent waiting for a rate limiter", ["system"]
)
LAST_SUCCESS = Gauge("closedloop_last_success_timestamp_seconds", "End of the last successful run")
SERVICE_UP = Gauge("closedloop_service_up", "1 while `closedloop serve` runs its scheduler")


def declare_jobs(jobs: list[str]) -> None:
    """Show every run status and job from start-up, at zero, so dashboards and alerts on
    ``rate()`` or absence see the series before the first run ends."""
    for status in RUN_STATUSES:
        RUNS.labels(status)
    for job in jobs:
        RUN_DURATION.labels(job)
        RUNS_IN_PROGRESS.labels(job).set(0)
