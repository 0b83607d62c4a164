"""Progress reporting seam: the sync reports, the CLI draws (Rich bars); tests pass nothing."""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...

    def finish(self) -> None: ...


class Progress(Protocol):
    def task(self, name: str, total: int | None = None) -> Task: ...


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


class NullProgress:
    def task(self, name: str, total: int | None = None) -> Task:
        return _NullTask()
