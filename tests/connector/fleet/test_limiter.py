"""The rate-limit buckets several workers share in Redis (DB 5): no window holds more than the
limit, a steady load gets all of it, accounts and APIs have buckets of their own, and the
limiters of a run draw from them only inside ``share_limits``."""

from __future__ import annotations

import heapq
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from connector.fleet.limiter import RedisBucket
from connector.kernel.ratelimit import RateLimiter, share_limits

REDIS = "redis://127.0.0.1:6379/5"


@pytest.fixture
def buckets() -> Iterator[list[RedisBucket]]:
    """Three clients of one Redis, as three workers would have."""
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", 6379)) != 0:
            if os.environ.get("CI"):
                pytest.fail("Redis is required in CI but not listening on 127.0.0.1:6379")
            pytest.skip("Redis not listening on 127.0.0.1:6379")
    clients = [RedisBucket(REDIS) for _ in range(3)]
    yield clients
    for client in clients:
        client.close()


def simulate(
    workers: list[RedisBucket], key: str, allowed: int, window: float, horizon: float
) -> list[float]:
    """Each worker asks as soon as it may (on a clock given to Redis); the grant times."""
    granted: list[float] = []
    queue = [(1000.0, i) for i in range(len(workers))]
    while queue:
        now, i = heapq.heappop(queue)
        if now >= 1000.0 + horizon:
            continue
        wait = workers[i].take(key, allowed, window, now=now)
        if wait <= 0:
            granted.append(now)
            wait = 0.001  # the request itself takes a moment
        heapq.heappush(queue, (now + wait, i))
    return sorted(granted)


def most_in_a_window(times: list[float], window: float) -> int:
    start, most = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.parametrize(("allowed", "window"), [(100, 10.0), (4, 1.0), (1, 60.0), (2, 1.0)])
def test_workers_together_stay_under_the_limit_and_get_all_of_it(
    buckets: list[RedisBucket], allowed: int, window: float
) -> None:
    key = uuid.uuid4().hex
    granted = simulate(buckets, key, allowed, window, horizon=6 * window)
    assert most_in_a_window(granted, window) == allowed
    assert len(granted) == 6 * allowed  # each window full, from its very start


def test_accounts_and_apis_have_buckets_of_their_own(buckets: list[RedisBucket]) -> None:
    first, second = buckets[0], buckets[1]
    tag = uuid.uuid4().hex
    assert first.take(f"{tag}:a:hubspot:10", 1, 1000.0) == 0
    assert second.take(f"{tag}:a:hubspot:10", 1, 1000.0) > 0  # the same bucket, another worker
    assert second.take(f"{tag}:b:hubspot:10", 1, 1000.0) == 0  # another account
    assert second.take(f"{tag}:a:hubspot:1", 1, 1000.0) == 0  # another API of the account


def test_limiters_built_inside_share_limits_draw_from_the_shared_bucket(
    buckets: list[RedisBucket],
) -> None:
    account = uuid.uuid4().hex
    with share_limits(buckets[0], account):
        shared = RateLimiter("hubspot", 1, 1000.0)
    alone = RateLimiter("hubspot", 1, 1000.0)
    shared.acquire()  # takes the one token of the account's bucket
    assert buckets[1].take(f"{account}:hubspot:1000", 1, 1000.0) > 0
    alone.acquire()  # its own window, in this process
