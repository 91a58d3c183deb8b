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


def pid_from_file(pidfile: Path, marker: str) -> int | None:
    """The pid a server's pidfile names, when that process still runs and its command line
    contains marker (so a recycled pid of another program is never taken for it)."""
    try:
        pid = int(pidfile.read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and any(marker.encode() in part for part in command) else None
