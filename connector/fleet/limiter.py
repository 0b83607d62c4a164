"""The rate limiters of an account shared by every worker: a token bucket per account and API
in Redis, taken atomically by one Lua script (Redis's own clock, so hosts need not agree).

A bucket that allows ``allowed`` requests per ``window`` holds at most ``burst`` tokens and
refills ``(allowed - burst) / window`` a second: no window of that length ever sees more than
``allowed`` requests, however many workers draw from it, and a steady sync gets 90 % of the
limit (``burst`` is a tenth of it).
"""

from __future__ import annotations

from typing import Any

TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return tostring(wait)
"""
PREFIX = "closedloop:ratelimit:"


def bucket_size(allowed: int, window: float) -> tuple[int, float]:
    """(burst, refill per second) keeping every ``window`` at or under ``allowed``."""
    if allowed < 2:
        return 1, 1.0 / window
    burst = max(1, allowed // 10)
    return burst, (allowed - burst) / window


class RedisBucket:
    """:class:`connector.kernel.ratelimit.SharedBucket` on a Redis server."""

    def __init__(self, url: str) -> None:
        import redis  # the fleet extra; a single company never imports it

        self._redis: Any = redis.Redis.from_url(url)
        self._take = self._redis.register_script(TAKE)

    def take(self, key: str, allowed: int, window: float) -> float:
        burst, rate = bucket_size(allowed, window)
        return float(self._take(keys=[PREFIX + key], args=[burst, rate]))

    def close(self) -> None:
        self._redis.close()
