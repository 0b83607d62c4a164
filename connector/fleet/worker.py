"""``closedloop worker``: a Celery worker of the fleet's queue.

One process runs one account's run at a time (Celery's ``solo`` pool): a run is a single
thread of I/O, a process of its own keeps one account's memory apart from the next, and a
process killed mid-run is then exactly one lost task, re-delivered by the broker. Run as many
workers as the machine has cores (or more: runs mostly wait on APIs).
"""

from __future__ import annotations

import os
import socket

from connector.fleet.accounts import Fleet
from connector.fleet.schemas import require_migrated
from connector.fleet.tasks import FLEET_ENV, configure


def start_worker(fleet: Fleet) -> int:
    """Check every account's schema, then consume tasks until SIGTERM; the exit code."""
    names = fleet.names()
    for name in names:
        fleet.account(name)  # every account's config is valid before the first task
    require_migrated(fleet, names)
    os.environ[FLEET_ENV] = str(fleet.path)  # the tasks load the same fleet
    app = configure(fleet)
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",  # and so a prefetch of 1: no task waits behind a long run
            "--loglevel=INFO",
            f"--queues={fleet.config.queue}",
            f"--hostname=closedloop-{os.getpid()}@{socket.gethostname()}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0
