"""Drill object-store-loss: a SeaweedFS volume server killed during a lakehouse run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vitalflow.drills.base import DrillOptions, DrillResult, Teardown, private_dir, wait_until
from vitalflow.drills.seaweed_cluster import SeaweedCluster
from vitalflow.locks import write_private
from vitalflow.object_store import credentials_file, server_env
from vitalflow.privacy.keys import new_key_text, write_key_file
from vitalflow.services import EmbeddedPostgres, free_port

NAME = "object-store-loss"
QUICK_OBSERVATIONS, FULL_OBSERVATIONS = 20_000, 1_000_000
OBSERVATIONS_PER_PATIENT = 27.5  # the generator's mean at visits=10 (benchmarks/inputs.py)
KILLED = 1  # which volume server dies
# ... once the run has written its first raw records (of the two input files): the rest of the
# ingest, refine and derive are still to come. (A share of the clean run's time would miss
# now and then: on a busy machine two runs differ by a factor of 2.)
RAW_DATA = "/warehouse/raw/record/data/"
PROBE_INTERVAL, PROBE_STALL = 0.1, 1.0  # a probe write slower than PROBE_STALL s is a stall
CHUNK = 8 << 20


@dataclass
class PipelineRun:
    """One `vitalflow run --profile lakehouse` in its own home, bucket and embedded PostgreSQL."""

    home: Path
    bucket: str
    key_file: Path  # one pseudonymisation key for both runs, so they write the same rows
    port: int = field(default_factory=free_port)
    seconds: float = 0.0
    attempts: int = 0
    summary: dict = field(default_factory=dict)

    def env(self, endpoint: str) -> dict[str, str]:
        # Without AWS_* keys, which would win over the cluster's key file in the home.
        return {**server_env(), "VITALFLOW__PATHS__HOME": str(self.home),
                "VITALFLOW__DATABASE__URL": "",
                "VITALFLOW__DATABASE__EMBEDDED_PORT": str(self.port),
                "VITALFLOW__S3__ENDPOINT": endpoint, "VITALFLOW__S3__BUCKET": self.bucket,
                "VITALFLOW__ICEBERG__CATALOG_URL": "", "VITALFLOW__ICEBERG__WAREHOUSE": "",
                "VITALFLOW__MONITORING__ENABLED": "false",
                "VITALFLOW__PRIVACY__KEY_FILE": str(self.key_file)}

    def start(self, cluster: SeaweedCluster, source: Path, teardown: Teardown) -> subprocess.Popen:
        private_dir(self.home / "secrets")
        # The run finds the cluster's keys where it looks for the embedded store's: no key in
        # the environment or on a command line.
        write_private(credentials_file(self.home), credentials_file(cluster.root).read_text())
        teardown.callback(EmbeddedPostgres(self.home, self.port).down)
        self.attempts += 1
        out = os.open(self.home / f"run{self.attempts}.out", os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(out, "wb") as stdout, open(self.home / f"run{self.attempts}.log", "ab",
                                                  opener=_private) as stderr:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "vitalflow"), "run", "--input", str(source),
                 "--profile", "lakehouse", "--json"], env=self.env(cluster.endpoint),
                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True)
        teardown.process(process, grace=20)
        return process

    def finish(self, process: subprocess.Popen, started: float, timeout: float) -> bool:
        try:
            process.wait(timeout=max(1.0, timeout - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            return False
        self.seconds += time.monotonic() - started
        lines = (self.home / f"run{self.attempts}.out").read_text().strip().splitlines()
        if process.returncode == 0 and lines:
            self.summary = json.loads(lines[-1])
        return process.returncode == 0

    def run(self, cluster: SeaweedCluster, source: Path, teardown: Teardown,
            timeout: float) -> bool:
        return self.finish(self.start(cluster, source, teardown), time.monotonic(), timeout)

    def stop_database(self) -> None:
        EmbeddedPostgres(self.home, self.port).down()

    def error(self) -> str:
        log = self.home / f"run{self.attempts}.log"
        return log.read_text(errors="replace")[-800:] if log.exists() else ""

    def contents(self, endpoint: str) -> tuple[dict[str, int], dict[str, str]]:
        """(rows of every Iceberg table as the pipeline's backend counts them, a digest of each
        derived table's rows, sorted by key, without the time they were computed)."""
        from storage_backends.registry import open_backend
        from vitalflow.config import load_settings
        from vitalflow.storage import control_url, engine_options, engine_url
        from vitalflow.tables import ALL_TABLES, DERIVED_TABLES, RAW_TABLES

        settings = load_settings(paths={"home": self.home}, database={
            "url": "", "embedded_port": self.port}, s3={"endpoint": endpoint,
                                                        "bucket": self.bucket})
        url = engine_url(settings, "iceberg", control_url(settings))
        backend = open_backend(url, **engine_options(settings, url))
        try:
            return ({t.qualified_name: backend.count(t) for t in RAW_TABLES + ALL_TABLES},
                    {t.qualified_name: _digest(backend.read(t, [
                        c for c in t.column_names if c != "computed_at"]), t.primary_key)
                     for t in DERIVED_TABLES})
        finally:
            backend.close()


class Probe(threading.Thread):
    """Writes a small object every PROBE_INTERVAL s and remembers each attempt, to time how
    long S3 writes failed or stalled and to check later that every acknowledged one is there."""

    def __init__(self, fs: pafs.S3FileSystem) -> None:
        super().__init__(daemon=True, name="s3-probe")
        self.fs, self.attempts, self.acked = fs, [], []
        self.stopping = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stopping.wait(PROBE_INTERVAL):
            number += 1
            key, start = f"probe/write-{number:07d}", time.monotonic()
            try:
                with self.fs.open_output_stream(key) as out:
                    out.write(key.encode() * 64)
                ok = True
            except OSError:
                ok = False
            self.attempts.append((start, time.monotonic(), ok))
            if ok:
                self.acked.append(key)

    def disrupted(self, since: float) -> tuple[float, int, int]:
        """(seconds of failed or stalled writes after since, failures, stalls)."""
        bad = [(s, e, ok) for s, e, ok in self.attempts
               if e >= since and (not ok or e - s > PROBE_STALL)]
        spans, covered = sorted((max(s, since), e) for s, e, _ in bad), 0.0
        end = since
        for start, stop in spans:  # the union of the spans, overlapping ones counted once
            covered += max(0.0, stop - max(start, end))
            end = max(end, stop)
        return covered, sum(1 for *_, ok in bad if not ok), sum(1 for *_, ok in bad if ok)

    def lost(self) -> int:
        return sum(1 for key in self.acked if _unreadable(self.fs, key))


def run(options: DrillOptions, teardown: Teardown) -> DrillResult:
    observations = options.observations or (QUICK_OBSERVATIONS if options.quick
                                            else FULL_OBSERVATIONS)
    timeout = 900 if options.quick else 3600
    workdir = options.workdir.resolve()
    source = _input(workdir / "input", observations)
    cluster = SeaweedCluster(workdir / "seaweedfs")
    endpoint = cluster.up(teardown)
    result = DrillResult(NAME, ok=False, details={
        "observations": observations, "volume_servers": cluster.volume_servers,
        "replication": cluster.replication})

    key_file = workdir / "secrets" / "pseudonym.key"
    write_key_file(key_file, new_key_text())
    clean = PipelineRun(workdir / "clean", "clean", key_file)
    if not clean.run(cluster, source, teardown, timeout):
        result.notes.append(f"the clean run failed: {clean.error()}")
        return result
    clean_counts, clean_derived = clean.contents(endpoint)
    clean.stop_database()

    faulty = PipelineRun(workdir / "faulty", "faulty", key_file)
    probe = Probe(cluster.filesystem())
    probe.start()
    teardown.callback(probe.stopping.set)
    started = time.monotonic()
    process = faulty.start(cluster, source, teardown)
    fs = cluster.filesystem()
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: process.poll() is not None or _writing(fs, "faulty"), timeout,
                   interval=0.25, what="raw data written")
    killed_while_running = process.poll() is None
    killed_at = time.monotonic()
    cluster.kill_volume(KILLED)
    finished = faulty.finish(process, started, timeout)
    if not finished:  # what an operator does: run again, it resumes from what was committed
        result.notes.append(f"the run failed after the kill and was run again: "
                            f"{faulty.error()}")
        finished = faulty.run(cluster, source, teardown, timeout)
    time.sleep(1)  # a last probe write after the run
    probe.stopping.set()
    probe.join(timeout=30)

    # Verified with the volume server still down: every copy left must serve the data.
    unreadable, objects = _unreadable_objects(cluster.filesystem(request_timeout=30), "faulty")
    faulty_counts, faulty_derived = faulty.contents(endpoint) if finished else ({}, {})
    rto, failures, stalls = probe.disrupted(killed_at)
    result.rto_s = round(rto, 2)
    result.acknowledged_lost = probe.lost()
    result.counts_exact = (finished and faulty_counts == clean_counts
                           and faulty_derived == clean_derived
                           and faulty.summary.get("counts") == clean.summary.get("counts"))
    result.extra_run_s = round(faulty.seconds - clean.seconds, 1) if finished else None
    result.details |= {
        "killed_while_running": killed_while_running,
        "killed_after_s": round(killed_at - started, 1), "run_attempts": faulty.attempts,
        "clean_run_s": round(clean.seconds, 1), "faulty_run_s": round(faulty.seconds, 1),
        "probe_writes": len(probe.attempts), "probe_failures": failures,
        "probe_stalls": stalls, "objects_read": objects, "objects_unreadable": unreadable,
        "rows": faulty_counts, "rows_clean": clean_counts,
        "derived_rows_equal": bool(faulty_derived) and faulty_derived == clean_derived}
    result.details |= _recover(cluster, teardown, killed_at, result.notes)
    if not killed_while_running:
        result.notes.append("the run ended before the volume server was killed: nothing tested")
    result.ok = bool(finished and killed_while_running and result.counts_exact
                     and unreadable == 0 and result.acknowledged_lost == 0)
    return result


def _recover(cluster: SeaweedCluster, teardown: Teardown, killed_at: float,
             notes: list[str]) -> dict:
    """Re-replicate what lost a copy, then bring the killed server back; how long, how much."""
    before = cluster.data_nodes()
    under = cluster.under_replicated()
    under_bytes = sum(size for volumes in before.values() for vid, size in volumes.items()
                      if vid in under)
    fix_start = time.monotonic()
    said = cluster.fix_replication()
    fix_s = time.monotonic() - fix_start
    after = cluster.data_nodes()
    copied = sum(size for node, volumes in after.items() for vid, size in volumes.items()
                 if vid not in before.get(node, {}))
    if cluster.under_replicated():
        notes.append(
            "volume.fix.replication copied nothing: SeaweedFS 4.48 refuses volume copies from a "
            "server whose address is loopback ('resolves to loopback address'), a guard "
            "against request forgery; on servers with real (private) addresses it copies. "
            "Here the copies come back with the restarted volume server.")
    restart = time.monotonic()
    cluster.start_volume(teardown, KILLED)
    rejoin_s = cluster.wait_registered(KILLED)
    wait_until(lambda: not cluster.under_replicated(), 120, interval=0.2,
               what="every volume fully replicated")
    recovered = time.monotonic()
    return {
        "under_replicated_volumes": len(under), "under_replicated_bytes": under_bytes,
        "bytes_re_replicated": copied, "fix_replication_s": round(fix_s, 1),
        "fix_replication_refused": "resolves to loopback" in said,
        "restart_to_replicated_s": round(recovered - restart, 2), "rejoin_s": round(rejoin_s, 2),
        "kill_to_replicated_s": round(recovered - killed_at, 1)}


def _input(folder: Path, observations: int) -> Path:
    from vitalflow.generate import generate

    generate(private_dir(folder), max(1, round(observations / OBSERVATIONS_PER_PATIENT)),
             seed=1, visits=10)
    return folder


def _writing(fs: pafs.S3FileSystem, bucket: str) -> bool:
    """Whether the run has written a raw data file yet."""
    try:
        found = fs.get_file_info(pafs.FileSelector(f"{bucket}/warehouse", recursive=True,
                                                   allow_not_found=True))
    except OSError:
        return False
    return any(RAW_DATA in info.path for info in found)


def _digest(rows: pa.Table, key: tuple[str, ...]) -> str:
    ordered = rows.sort_by([(column, "ascending") for column in key]).to_pylist()
    return hashlib.sha256(json.dumps(ordered, default=str).encode()).hexdigest()


def _unreadable_objects(fs: pafs.S3FileSystem, bucket: str) -> tuple[int, int]:
    """(objects that cannot be read whole, objects read): each object is read to its end and
    each Parquet file's footer parsed."""
    files = [info for info in fs.get_file_info(pafs.FileSelector(bucket, recursive=True))
             if info.type == pafs.FileType.File]
    return sum(_unreadable(fs, info.path) or (info.path.endswith(".parquet")
                                              and _bad_parquet(fs, info.path))
               for info in files), len(files)


def _bad_parquet(fs: pafs.S3FileSystem, path: str) -> bool:
    try:
        pq.ParquetFile(fs.open_input_file(path)).metadata
        return False
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return True


def _unreadable(fs: pafs.S3FileSystem, path: str) -> bool:
    try:
        with fs.open_input_stream(path) as stream:
            while stream.read(CHUNK):
                pass
        return False
    except OSError:
        return True


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
