"""Background processes owned by a state folder: start with a pidfile, find again, stop."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from vitalflow.processes import alive, terminate
from vitalflow.services import ServiceError, port_is_free

HOST = "127.0.0.1"


def choose_ports(preferred: dict[str, int], remembered: dict[str, int]) -> dict[str, int]:
    """The remembered ports when all are free, else each preferred port or a free one."""
    if remembered.keys() == preferred.keys() and all(port_is_free(p) for p in remembered.values()):
        return remembered
    chosen = {}
    with ExitStack() as held:  # held open until all are chosen, so none repeats
        for name, port in preferred.items():
            sock = held.enter_context(socket.socket())
            try:
                sock.bind((HOST, port))
            except OSError:
                sock.bind((HOST, 0))
            chosen[name] = sock.getsockname()[1]
    return chosen


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


class Process:
    """One server process; its pidfile and log sit in folder, and its command line names the
    folder, so a reused pid is not mistaken for it."""

    def __init__(self, name: str, folder: Path):
        self.name, self.folder = name, folder
        self.pidfile = folder / f"{name}.pid"
        self.logfile = folder / f"{name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.folder).encode() in command and alive(pid) else None

    def start(self, command: list[str]) -> subprocess.Popen:
        self.logfile.touch(mode=0o600)
        with self.logfile.open("ab") as log:
            process = subprocess.Popen(command, cwd=self.folder, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, umask=0o077)
        write_private(self.pidfile, str(process.pid))
        return process

    def wait_ready(self, process: subprocess.Popen, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                self.pidfile.unlink(missing_ok=True)
                raise ServiceError(f"{self.name} exited with code {process.returncode} while "
                                   f"starting; the end of {self.logfile}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"{self.name} did not become ready at {url} within "
                                   f"{timeout:.0f} s; the end of {self.logfile}:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 20) -> bool:
        """SIGTERM, then SIGKILL; False when it was not running."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        terminate(pid, timeout)
        self.pidfile.unlink(missing_ok=True)
        return True

    def log_tail(self) -> str:
        return self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
