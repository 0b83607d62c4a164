"""Client-side rate limiting: wait before a request rather than collect 429s after it.

One :class:`RateLimiter` per API. It allows ``share`` of the vendor's limit per window, resizes
itself when the vendor's headers give the real limit, and holds off when they say the window
is used up (or after a 429, for as long as the vendor says).

A vendor's limit is per portal, org or ad account, not per process: when many workers serve one
account (a fleet, ``connector.fleet``), :func:`share_limits` puts a :class:`SharedBucket` (Redis)
and the account's name in force for the run, and every limiter of that run then takes its turn
from the bucket all workers share, keyed by account, API and window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from connector.kernel import metrics

# The vendor counts arrivals, the limiter departures: a request that travels a little slower
# than the one a window before it would land inside that window. Each window is kept this much
# longer than the vendor's.
LATENCY_MARGIN = 0.02


class SharedBucket(Protocol):
    def take(self, key: str, allowed: int, window: float) -> float:
        """Take one request from ``key``'s bucket: 0 when granted, else seconds to wait."""
        ...


_shared: ContextVar[tuple[SharedBucket, str] | None] = ContextVar("shared_limits", default=None)


@contextmanager
def share_limits(bucket: SharedBucket, account: str) -> Iterator[None]:
    """Within the block, every limiter of this thread draws from ``bucket`` under ``account``."""
    token = _shared.set((bucket, account))
    try:
        yield
    finally:
        _shared.reset(token)


class RateLimiter:
    def __init__(self, system: str, limit: int, window_seconds: float, share: float = 1.0) -> None:
        self.system = system
        self.share = share
        self.interval = window_seconds  # the vendor's window, which names a shared bucket
        self.window = window_seconds * (1 + LATENCY_MARGIN)
        self.allowed = max(1, int(limit * share))
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        # Limiters are built with the run's adapters, inside share_limits: keep what it said.
        self._shared = _shared.get()

    def acquire(self) -> None:
        """Block until one more request fits in the window."""
        while True:
            wait = self._blocked_until - time.monotonic()
            if wait <= 0:
                wait = self._take()
                if wait <= 0:
                    return
            metrics.RATE_LIMIT_WAIT.labels(self.system).inc(wait)
            time.sleep(wait)

    def _take(self) -> float:
        if self._shared is not None:
            bucket, account = self._shared
            key = f"{account}:{self.system}:{self.interval:g}"
            return bucket.take(key, self.allowed, self.window)
        with self._lock:
            now = time.monotonic()
            while self._sent and now - self._sent[0] >= self.window:
                self._sent.popleft()
            if len(self._sent) < self.allowed:
                self._sent.append(now)
                return 0.0
            return self.window - (now - self._sent[0])

    def resize(self, limit: int, window_seconds: float) -> None:
        """The vendor's own figures (e.g. a portal on a larger plan than configured)."""
        with self._lock:
            self.interval = window_seconds
            self.window = window_seconds * (1 + LATENCY_MARGIN)
            self.allowed = max(1, int(limit * self.share))

    def observe(self, remaining: int | None, resets_in: float | None = None) -> None:
        """Feed the vendor's "remaining in this window" header: at zero, hold off until reset."""
        if remaining is not None and remaining <= 0:
            with self._lock:
                until = time.monotonic() + (resets_in or self.window)
                self._blocked_until = max(self._blocked_until, until)
