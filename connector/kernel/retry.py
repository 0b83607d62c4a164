"""The one retry policy: tenacity, jittered exponential backoff, honouring ``Retry-After``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from connector.kernel import metrics
from connector.kernel.errors import TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
MAX_WAIT_SECONDS = 30.0
# Tests shrink this so injected faults do not cost real seconds.
BACKOFF_SCALE = 1.0

_backoff = wait_random_exponential(multiplier=0.5, max=MAX_WAIT_SECONDS)


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    retry_after = getattr(error, "retry_after", None)
    base = float(retry_after) if retry_after is not None else _backoff(state)
    return min(base, MAX_WAIT_SECONDS) * BACKOFF_SCALE


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("retrying after transient error (attempt %d): %s", state.attempt_number, error)
    metrics.RETRIES.inc()


def call_with_retry(fn: Callable[[], T], attempts: int = MAX_ATTEMPTS) -> T:
    """Call ``fn``, retrying :class:`TransientError` with backoff; anything else propagates."""
    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(attempts),
        wait=_wait,
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(fn)
