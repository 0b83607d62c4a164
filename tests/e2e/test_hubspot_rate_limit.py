"""A portal with a small ten-second limit: the sync sizes itself from HubSpot's headers, waits
out the window after a 429 and finishes, only slower (through hubspot-api-client)."""

from __future__ import annotations

from pathlib import Path

from connector.demo.synthetic import generate
from tests.e2e.crm_loop import start_loop

LIMIT, WINDOW = 20, 10.0


def busiest_window(times: list[float]) -> int:
    """The most requests that arrived within any ``WINDOW`` seconds."""
    times = sorted(times)
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= WINDOW:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_a_portal_limited_to_20_requests_in_10_seconds_is_synced(tmp_path: Path) -> None:
    loop = start_loop(
        tmp_path / "demo", "hubspot", generate(seed=5, contacts=12, visits=80, deals=4)
    )
    try:
        loop.crm.ten_secondly = (LIMIT, WINDOW)  # the demo config says nothing of the tier
        _, run = loop.sync()
        counted = [r for r in loop.crm.requests() if not r.path.endswith("/search")]
    finally:
        loop.systems.stop()
    assert run.status == "succeeded", run.error
    assert loop.writes(), "nothing was written"
    assert len(counted) > LIMIT  # more than one window's worth: the limit was in play
    assert busiest_window([r.at for r in counted]) <= LIMIT
