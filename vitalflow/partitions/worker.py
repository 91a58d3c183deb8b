"""Process workers: `python -m vitalflow.partitions.worker SETTINGS RUN_ID STAGE` claims and
does partitions until none is left; ProcessWorkers runs N of them for a stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from vitalflow.config import Settings
from vitalflow.partitions import claims
from vitalflow.partitions.run import work


def write_settings(settings: Settings, path: Path) -> Path:
    """The settings a worker process loads (owner-only: they may hold the database URL)."""
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    path.write_text(settings.model_dump_json())
    return path


def load_settings_file(path: Path) -> Settings:
    return Settings(**json.loads(Path(path).read_text()))


class ProcessWorkers:
    """execute(run_id, stage) for run_partitioned: count worker processes share the stage's
    partitions; while partitions are left and no worker lives (all killed, say), another is
    started. started(process) registers each (on a drill's teardown); watch(run_id, stage, workers)
    is called at every poll (the drill kills one from there)."""

    def __init__(self, settings_file: Path, count: int, control_url: str,
                 started: Callable[[subprocess.Popen], None] = lambda process: None,
                 watch: Callable[[str, str, list[subprocess.Popen]], None] | None = None,
                 timeout: float = 1800, restarts: int = 3) -> None:
        self.settings_file = settings_file
        self.count = count
        self.control_url = control_url
        self.started = started
        self.watch = watch
        self.timeout = timeout
        self.restarts = restarts
        self.log = settings_file.with_name("workers.log")

    def start(self, run_id: str, stage: str) -> subprocess.Popen:
        with open(self.log, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "vitalflow.partitions.worker", str(self.settings_file),
                 run_id, stage], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.started(process)
        return process

    def __call__(self, run_id: str, stage: str) -> None:
        workers = [self.start(run_id, stage) for _ in range(self.count)]
        deadline = time.monotonic() + self.timeout
        restarts = self.restarts
        with psycopg.connect(self.control_url, autocommit=True, connect_timeout=10) as conn:
            while any(s["state"] != "done" for s in claims.states(conn, run_id, stage)):
                if self.watch:
                    self.watch(run_id, stage, workers)
                if all(w.poll() is not None for w in workers):
                    if not restarts:
                        raise RuntimeError(f"{stage} workers keep failing: see {self.log}")
                    restarts -= 1
                    workers.append(self.start(run_id, stage))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{stage} partitions not done in {self.timeout:.0f} s")
                time.sleep(0.2)
        for process in workers:  # they exit by themselves once nothing is left to claim
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: list[str]) -> int:
    from vitalflow.storage import open_layers

    settings_file, run_id, stage = argv
    if stage not in claims.STAGES:
        raise SystemExit(f"stage must be one of {claims.STAGES}")
    settings = load_settings_file(Path(settings_file))
    layers = open_layers(settings)
    try:
        done = work(settings, layers, run_id, stage)
    finally:
        layers.close()
    print(f"worker {claims.worker_name()}: {done} {stage} partitions of run {run_id}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
