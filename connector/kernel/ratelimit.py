"""Client-side rate limiting: wait before a request rather than collect 429s after it.

One :class:`RateLimiter` per API. It allows ``share`` of the vendor's limit per window, resizes
itself when the vendor's headers give the real limit, and holds off when they say the window
is used up (or after a 429, for as long as the vendor says).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from connector.kernel import metrics

# The vendor counts arrivals, the limiter departures: a request that travels a little slower
# than the one a window before it would land inside that window. Each window is kept this much
# longer than the vendor's.
LATENCY_MARGIN = 0.02


class RateLimiter:
    def __init__(self, system: str, limit: int, window_seconds: float, share: float = 1.0) -> None:
        self.system = system
        self.share = share
        self.window = window_seconds * (1 + LATENCY_MARGIN)
        self.allowed = max(1, int(limit * share))
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until one more request fits in the window."""
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                wait = self._blocked_until - now
                if wait <= 0 and len(self._sent) < self.allowed:
                    self._sent.append(now)
                    return
                if wait <= 0:
                    wait = self.window - (now - self._sent[0])
            metrics.RATE_LIMIT_WAIT.labels(self.system).inc(wait)
            time.sleep(wait)

    def resize(self, limit: int, window_seconds: float) -> None:
        """The vendor's own figures (e.g. a portal on a larger plan than configured)."""
        with self._lock:
            self.window = window_seconds * (1 + LATENCY_MARGIN)
            self.allowed = max(1, int(limit * self.share))

    def observe(self, remaining: int | None, resets_in: float | None = None) -> None:
        """Feed the vendor's "remaining in this window" header: at zero, hold off until reset."""
        if remaining is not None and remaining <= 0:
            with self._lock:
                until = time.monotonic() + (resets_in or self.window)
                self._blocked_until = max(self._blocked_until, until)
