"""What the PostgreSQL drills put on the cluster: `vitalflow run` as a subprocess, and a write
probe (a row every ~100 ms through HAProxy, each acknowledgement timed)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from vitalflow.drills.base import Teardown, private_dir
from vitalflow.drills.pg_cluster import Cluster

TABLE = "drill_probe"
QUICK_OBSERVATIONS = 20_000
FULL_OBSERVATIONS = 1_000_000


def make_input(workdir: Path, observations: int) -> Path:
    """Generated FHIR input of about this many Observations (the benchmark's generator
    settings)."""
    from benchmarks.inputs import GENERATE_ARGS, OBSERVATIONS_PER_PATIENT
    from vitalflow.generate import generate

    folder = private_dir(workdir / "input")
    generate(folder, max(1, observations // OBSERVATIONS_PER_PATIENT), **GENERATE_ARGS)
    return folder


@dataclass(frozen=True)
class Setup:
    cluster: Cluster
    input_dir: Path
    key: str
    observations: int


def set_up(options, teardown: Teardown, result) -> Setup | None:
    """What both PostgreSQL drills start with: the tools checked, the cluster up, the input
    generated, one pseudonymisation key. None (with the reason in result.notes) when a tool is
    missing."""
    from vitalflow.drills.pg_cluster import INSTALL_HINT, missing_tools

    missing = missing_tools()
    if missing:
        result.notes.append(f"not run: missing {', '.join(missing)}, {INSTALL_HINT}")
        return None
    observations = options.observations or (QUICK_OBSERVATIONS if options.quick
                                            else FULL_OBSERVATIONS)
    cluster = Cluster(options.workdir / "cluster")
    cluster.start(teardown)
    return Setup(cluster, make_input(options.workdir, observations), PipelineJob.new_key(),
                 observations)


@dataclass
class PipelineJob:
    """`vitalflow run` on one database of the cluster (through HAProxy's primary port), with
    its own project folder; every job of a drill shares one pseudonym key, so their tables
    can be compared row for row."""

    cluster: Cluster
    database: str
    home: Path
    input_dir: Path
    key: str
    process: subprocess.Popen | None = None
    started: float = 0.0

    @staticmethod
    def new_key() -> str:
        return secrets.token_hex(32)

    def start(self, teardown: Teardown) -> PipelineJob:
        self.cluster.create_database(self.database)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VITALFLOW", "PG"))}
        env.update(VITALFLOW__DATABASE__URL=self.cluster.url(database=self.database),
                   VITALFLOW__PATHS__HOME=str(private_dir(self.home)),
                   VITALFLOW_PSEUDONYM_KEY=self.key)
        self._stderr = (self.home / "run.stderr").open("w+")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vitalflow.cli", "run", "--input", str(self.input_dir),
             "--json"], env=env, stdout=subprocess.PIPE, stderr=self._stderr,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        teardown.callback(self.stop)
        return self

    def stop(self, grace: float = 10) -> None:
        """The run and its worker processes (its session's process group), if still going."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def wait(self, timeout: float) -> tuple[int, dict, float]:
        """(exit code, the run's JSON summary or {}, seconds from start to end)."""
        out, _ = self.process.communicate(timeout=timeout)
        seconds = time.monotonic() - self.started
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return self.process.returncode, json.loads(lines[-1]) if lines else {}, seconds

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-1500:]

    def refining(self) -> bool:
        """The run is writing refined rows now (a statement on refined.* is active)."""
        with psycopg.connect(self.cluster.admin_url(), connect_timeout=2) as conn:
            return bool(conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                "AND query ILIKE %s AND pid <> pg_backend_pid()",
                (self.database, "%refined.%")).fetchone())


class WriteProbe:
    """Inserts numbered rows one by one (autocommit) and remembers which were acknowledged,
    when. A lost connection is dropped and reconnected; an attempt without an ack is not
    counted (it may or may not have committed: the client cannot know)."""

    def __init__(self, url: str, interval: float = 0.1) -> None:
        self.url = url
        self.interval = interval
        self.acks: list[tuple[int, float]] = []  # (row id, time.monotonic() of the ack)
        self.attempts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WriteProbe:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, "
                         "acked_by_probe timestamptz NOT NULL DEFAULT now())")
            start = conn.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}").fetchone()[0]
        self._next = start + 1
        self._thread = threading.Thread(target=self._loop, name="write-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=2)
                row, self._next = self._next, self._next + 1
                self.attempts += 1
                conn.execute(f"INSERT INTO {TABLE} (id) VALUES (%s)", (row,))
                self.acks.append((row, time.monotonic()))
            except psycopg.Error:
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn = None
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        if conn is not None:
            conn.close()

    def longest_gap(self, since: float) -> float:
        """The longest time without an ack from the last ack before `since` on: how long no
        primary took writes (the probe's interval included)."""
        times = [t for _, t in self.acks]
        before = [t for t in times if t <= since]
        window = ([before[-1]] if before else [since]) + [t for t in times if t > since]
        if len(window) < 2:
            return float("inf")
        return max(b - a for a, b in zip(window, window[1:], strict=False))

    def lost(self, url: str) -> int:
        """Acknowledged rows the database at url (the primary after failover) does not hold."""
        acked = [row for row, _ in self.acks]
        with psycopg.connect(url, connect_timeout=5) as conn:
            present = {r[0] for r in conn.execute(f"SELECT id FROM {TABLE} WHERE id = ANY(%s)",
                                                  (acked,))}
        return len(set(acked) - present)
