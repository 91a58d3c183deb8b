"""Progress reporting that domain code can call without knowing whether anyone is watching."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Step(Protocol):
    def advance(self, amount: float = 1) -> None: ...


class Reporter(Protocol):
    def step(self, description: str, total: float | None) -> Iterator[Step]: ...


class _Silent:
    def advance(self, amount: float = 1) -> None:
        pass


class SilentReporter:
    """The default: reports nothing."""

    @contextmanager
    def step(self, description: str, total: float | None) -> Iterator[Step]:
        yield _Silent()


class RichReporter:
    """Progress bars on stderr for long steps (rich)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=Console(stderr=True), transient=False)

    def __enter__(self) -> RichReporter:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    @contextmanager
    def step(self, description: str, total: float | None) -> Iterator[Step]:
        task = self._progress.add_task(description, total=total)

        class _Bar:
            def advance(_, amount: float = 1) -> None:
                self._progress.advance(task, amount)

        yield _Bar()
        self._progress.update(task, total=self._progress.tasks[task].completed)
