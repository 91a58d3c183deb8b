"""Server processes the project starts itself: whether one still runs, and stopping one."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Running and not a zombie: a server killed after its parent is never reaped here, and
    its pid still 'exists' to kill(pid, 0) and to pg_ctl."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def terminate(pid: int, grace: float, kill_wait: float = 5) -> None:
    """SIGTERM, then SIGKILL after grace seconds; the exit status collected when the process
    is this one's child, so no zombie lingers."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, kill_wait)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not alive(pid):
            break
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
