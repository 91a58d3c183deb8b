"""What every drill shares: options, the result and its JSON line, and the teardown stack.

Contract for a drill module (registered in `vitalflow.drills.DRILLS`):

- it exposes ``run(options: DrillOptions, teardown: Teardown) -> DrillResult``;
- every process, port, folder or namespace it creates is registered on ``teardown`` the moment
  it exists (``teardown.process(popen_or_pid)``, ``teardown.callback(fn)``), so an interrupted
  drill still stops all of it; it never signals a process it did not start;
- it works under ``options.workdir`` (owner-only) and binds 127.0.0.1 only;
- it is bounded: ``options.quick`` is the test-sized version (small data, about a minute at most),
  and every wait has a deadline;
- its figures go in the result: the common ones (``rto_s``, ``acknowledged_lost``,
  ``counts_exact``, ``extra_run_s``) where they apply, the rest in ``details``; a figure it
  cannot measure here is None with the reason in ``notes``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vitalflow.processes import alive, terminate


@dataclass(frozen=True)
class DrillOptions:
    workdir: Path
    quick: bool = False
    seconds: float | None = None  # a time budget, for drills that repeat (chaos)
    observations: int | None = None  # input size; None: the drill's default for quick or full


@dataclass
class DrillResult:
    drill: str
    ok: bool
    rto_s: float | None = None
    acknowledged_lost: int | None = None
    counts_exact: bool | None = None
    extra_run_s: float | None = None
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    quick: bool = False
    seconds: float = 0.0  # how long the drill itself took

    def json_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


class Teardown(contextlib.ExitStack):
    """An ExitStack that also unwinds on SIGTERM and SIGINT, and stops processes it was given
    (only those: a pid is remembered with its start time, so a recycled pid is left alone)."""

    def __enter__(self) -> Teardown:
        super().__enter__()
        self._previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: the caller handles it
                self._previous[sig] = signal.signal(sig, self._interrupted)
        return self

    def __exit__(self, *exc) -> bool:
        try:
            return super().__exit__(*exc)
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)

    @staticmethod
    def _interrupted(signum, frame) -> None:
        raise KeyboardInterrupt(f"drill interrupted by signal {signum}")

    def process(self, process: subprocess.Popen | int, grace: float = 10) -> None:
        pid = process if isinstance(process, int) else process.pid
        started = _start_time(pid)

        def stop() -> None:
            if started is not None and _start_time(pid) == started and alive(pid):
                terminate(pid, grace)
            if isinstance(process, subprocess.Popen):
                with contextlib.suppress(Exception):
                    process.wait(timeout=1)
        self.callback(stop)


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2,
               what: str = "condition") -> float:
    """Polls until check() is true; returns the seconds waited, raises TimeoutError naming what."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - start


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
