"""HubSpot's failures as closedloop's errors: one table, used by every call of the adapter."""

from __future__ import annotations

import json
from typing import Any

import urllib3

from connector.kernel.errors import (
    BudgetExhausted,
    ClosedloopError,
    ConfigError,
    RecordError,
    TransientError,
)


def header(headers: Any, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    return str(value) if value is not None else None


def _retry_after(headers: Any) -> float | None:
    try:
        return max(0.0, float(header(headers, "Retry-After") or ""))
    except ValueError:
        return None


def classify(error: Exception, action: str) -> ClosedloopError | None:
    """HubSpot's failures as closedloop's errors (``None``: not an HTTP failure, re-raise).

    ==========================================  =============================================
    connection refused / reset / timeout         TransientError
    401                                          ConfigError: the token
    403                                          ConfigError: the private app's scopes
    429 ``DAILY``                                BudgetExhausted: resume tomorrow
    429 ten-secondly / secondly                  TransientError(Retry-After, else the interval)
    5xx                                          TransientError(Retry-After)
    0 (client-side: TLS, unparsable response)    ConfigError
    other 4xx                                    RecordError with HubSpot's message
    ==========================================  =============================================
    """
    if isinstance(error, urllib3.exceptions.HTTPError):
        return TransientError(f"HubSpot {action}: connection failed ({type(error).__name__})")
    status = getattr(error, "status", None)
    if not isinstance(status, int) or not hasattr(error, "body"):
        return None
    headers = getattr(error, "headers", None)
    body = _error_body(error)
    message = str(body.get("message") or getattr(error, "reason", "") or "")
    category = str(body.get("category") or body.get("policyName") or "")
    if status == 401:
        return ConfigError(
            f"HubSpot rejected the access token while trying to {action} (401 {category}). "
            "Set hubspot access_token to a valid private app token (Settings > Integrations > "
            "Private Apps)."
        )
    if status == 403:
        return ConfigError(
            f"HubSpot refused to {action} (403 {category}): {message} Give the private app the "
            "crm.objects.contacts/deals read and write and crm.schemas.contacts/deals read and "
            "write scopes."
        )
    if status == 429:
        if body.get("policyName") == "DAILY":
            return BudgetExhausted(
                "HubSpot's daily API limit is used up; the run stops and resumes after midnight "
                "in the portal's time zone."
            )
        # Waiting less than the window only collects more 429s: wait for Retry-After, else
        # the window the portal names (the search limit's, with no headers: a second).
        wait = _retry_after(headers)
        if wait is None:
            interval = header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds") or ""
            wait = int(interval) / 1000 if interval.isdigit() else 1.0
        return TransientError(
            f"HubSpot rate limit ({category or 'RATE_LIMIT'}) while trying to {action}",
            retry_after=wait,
        )
    if status == 0:  # the client's own failure: TLS to ``host``, or a body it cannot parse
        return ConfigError(f"HubSpot {action}: {getattr(error, 'reason', '')} (check host)")
    if status >= 500:
        return TransientError(
            f"HubSpot server error {status} while trying to {action}",
            retry_after=_retry_after(headers),
        )
    return RecordError(f"HubSpot rejected the request to {action} ({status} {category}): {message}")


def _error_body(error: Exception) -> dict[str, Any]:
    raw = getattr(error, "body", None)
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
