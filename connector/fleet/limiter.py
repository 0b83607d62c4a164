"""The rate limiters of an account shared by every worker: one bucket per account (or limit
group) and API in Redis, taken atomically by one Lua script, on Redis's own clock (so hosts need
not agree on the time).

A bucket holds the moments of the requests granted in the last ``window`` seconds (a sorted
set): a request is granted while fewer than ``allowed`` are there, else it learns how long until
the oldest leaves. That is the rule of the in-process limiter (``connector.kernel.ratelimit``)
and of the vendors' rolling windows: a run may use the whole window at once, and no window of
that length ever holds more than ``allowed``, however many workers draw from it. (A token bucket
refilling at ``allowed / window`` would let twice the limit into one window, after a pause.)
"""

from __future__ import annotations

import uuid
from typing import Any

TAKE = """
local allowed = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[4])
if not now then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < allowed then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""
PREFIX = "closedloop:ratelimit:"


class RedisBucket:
    """:class:`connector.kernel.ratelimit.SharedBucket` on a Redis server."""

    def __init__(self, url: str) -> None:
        import redis  # the fleet extra; a single company never imports it

        self._redis: Any = redis.Redis.from_url(url)
        self._take = self._redis.register_script(TAKE)

    def take(self, key: str, allowed: int, window: float, now: float | None = None) -> float:
        """0 when the request may go, else seconds to wait. ``now`` (seconds) replaces Redis's
        clock: the tests' seam for time."""
        args: list[Any] = [allowed, window, uuid.uuid4().hex]
        if now is not None:
            args.append(repr(now))
        return float(self._take(keys=[PREFIX + key], args=args))

    def close(self) -> None:
        self._redis.close()
