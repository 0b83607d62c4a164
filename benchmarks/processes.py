"""Whole processes timed from outside, for the benchmarks that run closedloop beside a peer."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    """One whole process: wall seconds, CPU seconds (user + system), peak RSS in MB, output."""

    wall: float
    cpu: float
    peak_mb: float
    stdout: str


def run_process(command: list[str], capture: bool = True, cwd: Path | None = None) -> Run:
    """Run ``command`` to its end; its own rusage (``wait4``) gives its CPU time and peak RSS.
    Its output goes to the terminal unless captured; its errors always do."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out if capture else None, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        if code := os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{command[0]} failed ({code})")
        out.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Run(elapsed, cpu, usage.ru_maxrss / 1024, out.read().decode())
