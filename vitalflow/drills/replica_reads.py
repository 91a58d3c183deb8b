"""Drill replica-reads: the benchmark's queries on 0, 1 and 2 replicas while the pipeline writes."""

from __future__ import annotations

import random
import threading
import time
from itertools import count

import psycopg

from vitalflow.drills.base import DrillOptions, DrillResult, Teardown
from vitalflow.drills.pg_cluster import Cluster
from vitalflow.drills.pg_workload import PipelineJob, set_up

NAME = "replica-reads"
READERS = 4  # concurrent analysts
_RUN_TIMEOUT = 3600


def run(options: DrillOptions, teardown: Teardown) -> DrillResult:
    from benchmarks.queries import choose_parameters

    result = DrillResult(NAME, ok=False)
    setup = set_up(options, teardown, result)
    if setup is None:
        return result
    cluster, input_dir, key = setup.cluster, setup.input_dir, setup.key
    # The data the analysts read, loaded before; the load writes the same input elsewhere.
    base = PipelineJob(cluster, "analytics", options.workdir / "base", input_dir, key)
    code, _, _ = base.start(teardown).wait(_RUN_TIMEOUT)
    if code != 0:
        result.notes.append(f"loading the data to read failed: {base.stderr_tail()}")
        return result
    params = choose_parameters(_layers(cluster.url(database=base.database)))
    load = _Load(cluster, options, input_dir, key, teardown).start()
    lag = _LagSampler(cluster).start()
    phase_s = 3.0 if options.quick else 20.0
    try:
        throughput = {f"{n}_replicas": _read_phase(cluster, base.database, n, phase_s, params)
                      for n in (0, 1, 2)}
        served_by_replica = _in_recovery(cluster.replica_url(base.database))
    finally:
        load.stop()
        lag.stop()
    result.details = {"observations": setup.observations, "readers": READERS, "phase_s": phase_s,
                      "read_throughput_qps": throughput, "replica_port_is_replica":
                      served_by_replica, "load_runs": load.runs, "load_failures": load.failures,
                      **lag.summary()}
    result.ok = served_by_replica and not load.failures and all(
        t["queries"] > 0 and not t["errors"] for t in throughput.values())
    result.notes.append("all nodes share this machine's 2 cores: more replicas add read "
                        "capacity only across machines; here they show the routing works")
    return result


def _layers(url: str):
    """Read-only layers on url: the queries read refined and derived only (raw unused), and
    nothing is created, so a hot standby serves them."""
    from storage_backends.postgres import PostgresBackend
    from vitalflow.storage import Layers

    backend = PostgresBackend(url)
    return Layers("postgres", None, backend, backend, backend)


def _in_recovery(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]


def _read_phase(cluster: Cluster, database: str, replicas: int, seconds: float,
                params: dict) -> dict:
    """READERS threads run the three queries in turn for `seconds` through the primary port
    (0 replicas) or the replica port with `replicas` replicas in HAProxy's pool."""
    from benchmarks.queries import QUERIES
    from vitalflow.config import load_settings

    standbys = [m["name"] for m in cluster.members() if m.get("role") != "leader"]
    left_out = standbys[replicas:] if replicas else []
    for name in left_out:
        cluster.haproxy_command(f"disable server replicas/{name}")
    settings, done, errors = load_settings(), count(), count()
    deadline = time.monotonic() + seconds

    def reader(seed: int) -> None:
        layers = _layers(cluster.replica_url(database) if replicas
                         else cluster.url(database=database))
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            try:
                rng.choice(list(QUERIES.values()))(layers, settings, params, rng)
                next(done)
            except (psycopg.Error, OSError):
                next(errors)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for name in left_out:
            cluster.haproxy_command(f"enable server replicas/{name}")
    queries, failed = next(done), next(errors)
    return {"queries": queries, "errors": failed,
            "qps": round(queries / (time.monotonic() - started), 1)}


class _Load:
    """`vitalflow run` again and again (a new database each time) until stopped: the pipeline
    writing while the analysts read."""

    def __init__(self, cluster: Cluster, options: DrillOptions, input_dir, key: str,
                 teardown: Teardown) -> None:
        self.cluster, self.options, self.input_dir, self.key = cluster, options, input_dir, key
        self.teardown = teardown
        self.runs, self.failures = 0, []
        self._job: PipelineJob | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="load", daemon=True)

    def start(self) -> _Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        """The run in progress is stopped too: it is load, not a result."""
        self._stop.set()
        if self._job is not None:
            self._job.stop()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.runs += 1
            name = f"load_{self.runs}"
            self._job = PipelineJob(self.cluster, name, self.options.workdir / name,
                                    self.input_dir, self.key).start(self.teardown)
            code, _, _ = self._job.wait(_RUN_TIMEOUT)
            if code != 0 and not self._stop.is_set():
                self.failures.append(self._job.stderr_tail())
                return


class _LagSampler:
    """Replication lag of every standby, from the primary's pg_stat_replication, twice a
    second: bytes of WAL not yet replayed and replay_lag."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.bytes: list[int] = []
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lag", daemon=True)

    def start(self) -> _LagSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        with psycopg.connect(self.cluster.admin_url(), autocommit=True,
                             connect_timeout=5) as conn:
            while not self._stop.wait(0.5):
                for lag_bytes, lag_s in conn.execute(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint, "
                        "extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication"):
                    self.bytes.append(lag_bytes or 0)
                    self.seconds.append(lag_s or 0.0)

    def summary(self) -> dict:
        if not self.bytes:
            return {"lag_samples": 0}
        ordered = sorted(self.bytes)
        return {"lag_samples": len(self.bytes), "lag_bytes_max": ordered[-1],
                "lag_bytes_p95": ordered[int(0.95 * (len(ordered) - 1))],
                "replay_lag_s_max": round(max(self.seconds), 3),
                "replay_lag_s_mean": round(sum(self.seconds) / len(self.seconds), 3)}
