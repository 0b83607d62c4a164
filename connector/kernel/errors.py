"""closedloop's exceptions, classified once.

    ClosedloopError
     ├── ConfigError      the user must fix something: bad YAML, unknown field, 401/403,
     │                    missing secret
     ├── TransientError   worth retrying: 429, 5xx, dropped connection (carries ``retry_after``)
     ├── BudgetExhausted  the configured share of an API quota is used: stop cleanly, resume later
     ├── Interrupted      a stop was asked for (SIGTERM): the batch in flight finished first
     ├── LockHeld         another process runs a job on this store right now
     ├── Unavailable      the CRM cannot hold what an optional feature needs (its tier): the
     │                    feature is skipped with this message, the run goes on
     └── RecordError      one record fails, the run goes on

Adapters translate their client library's exceptions into these; retries live in
:mod:`connector.kernel.retry` and only ever retry ``TransientError``.
"""

from __future__ import annotations


class ClosedloopError(Exception):
    """Base of every error closedloop raises on purpose."""


class ConfigError(ClosedloopError):
    """Something the user must fix; the message says what and where."""


class TransientError(ClosedloopError):
    """A failure that may pass: rate limit, server error, connection."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExhausted(ClosedloopError):
    """The run stopped before using more than its share of an API quota."""


class Interrupted(ClosedloopError):
    """The run stopped at a batch boundary because a stop was requested."""


class LockHeld(ClosedloopError):
    """Another process holds the store lock (``closedloop sync`` exits 5)."""


class Unavailable(ClosedloopError):
    """An optional feature the CRM account cannot support (e.g. HubSpot custom objects below
    Enterprise): skipped with this message, not an error of the run."""


class RecordError(ClosedloopError):
    """One record cannot be processed."""
