"""Prometheus metrics of a closedloop process (exposed by ``closedloop serve`` on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RUNS = Counter("closedloop_runs", "Sync runs by final status", ["status"])
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
