"""A Prefect server on 127.0.0.1 and process workers of one work pool, all under one folder and
all in process groups of their own, so stopping them stops the flow runs they started too.
Prefect is driven through its command line and flows/partitions.py, never imported here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from vitalflow.config import PROJECT_ROOT
from vitalflow.services import free_port

POOL = "vitalflow-partitions"


class PrefectPool:
    """up() starts the server and the pool's deployment; workers(n) runs n process workers
    (one flow run at a time each); down() stops all of it. The constructor does no I/O."""

    def __init__(self, home: Path, pool: str = POOL, timeout: float = 240) -> None:
        self.home = home
        self.pool = pool
        self.timeout = timeout
        self.port: int | None = None
        self.server: subprocess.Popen | None = None
        self.running: list[subprocess.Popen] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
                "PREFECT_SERVER_API_HOST": "127.0.0.1", "PYTHONPATH": str(PROJECT_ROOT),
                # Workers look for new flow runs every second, not every ten.
                "PREFECT_WORKER_QUERY_SECONDS": "1"}

    def up(self) -> str:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.port = free_port()
        self.server = self._start("server", "server", "start", "--host", "127.0.0.1",
                                  "--port", str(self.port), "--no-services")
        deadline = time.monotonic() + self.timeout
        while not self._healthy():
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prefect server did not start: see {self.home}/server.log")
            time.sleep(1)
        self._prefect("work-pool", "create", self.pool, "--type", "process", "--overwrite")
        subprocess.run([sys.executable, "-m", "flows.partitions", "deploy", "--pool", self.pool],
                       env=self.env(), cwd=PROJECT_ROOT, check=True, timeout=self.timeout,
                       stdout=subprocess.DEVNULL, stderr=self._log("deploy"))
        return self.api_url

    def workers(self, count: int) -> list[subprocess.Popen]:
        """count process workers, each taking one flow run at a time."""
        self.stop_workers()
        self.running = [self._start(f"worker-{i}", "worker", "start", "--pool", self.pool,
                                    "--type", "process", "--limit", "1", "--name",
                                    f"worker-{i}") for i in range(count)]
        return self.running

    def run(self, settings_file: Path, input_path: Path, parts: int, out: Path,
            watch: Callable[[], None] = lambda: None) -> dict:
        """The planner flow (flows/partitions.py) in its own process; its summary. watch() is
        called every half second while it runs."""
        deadline = time.monotonic() + self.timeout * 10
        with self._log("planner") as log:
            planner = subprocess.Popen(
                [sys.executable, "-m", "flows.partitions", "run", "--settings",
                 str(settings_file), "--input", str(input_path), "--parts", str(parts),
                 "--out", str(out)], env=self.env(), cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        try:
            while planner.poll() is None:
                watch()
                if time.monotonic() > deadline:
                    raise TimeoutError("the partitioned run did not finish in time")
                time.sleep(0.5)
        finally:
            _stop_group(planner, grace=5)
        if planner.returncode:
            raise RuntimeError(f"the partitioned run failed: see {self.home}/planner.log")
        return json.loads(out.read_text())

    def started_by_workers(self, pid: int) -> bool:
        """Whether pid descends from one of this pool's workers (a flow run it started)."""
        workers = {w.pid for w in self.running}
        while pid > 1:
            if pid in workers:
                return True
            try:
                pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                return False
        return False

    def stop_workers(self) -> None:
        for worker in self.running:
            _stop_group(worker)
        self.running = []

    def down(self) -> bool:
        self.stop_workers()
        if self.server is not None:
            _stop_group(self.server)
        return True

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _log(self, name: str):
        path = self.home / f"{name}.log"
        return open(path, "ab")

    def _start(self, log: str, *args: str) -> subprocess.Popen:
        with self._log(log) as out:
            return subprocess.Popen([sys.executable, "-m", "prefect", *args], env=self.env(),
                                    cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def _prefect(self, *args: str) -> None:
        with self._log("cli") as out:
            subprocess.run([sys.executable, "-m", "prefect", *args], env=self.env(),
                           cwd=PROJECT_ROOT, check=True, timeout=self.timeout, stdout=out,
                           stderr=subprocess.STDOUT)


def _stop_group(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM to the process group this pool started, then SIGKILL to whatever of it is left
    (the flow runs a worker started may outlive it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
