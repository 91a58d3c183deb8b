"""worker-scaling drill: refine and derive in person-hash partitions shared by 1 and 2 worker
processes (throughput), then a worker killed with SIGKILL mid-partition: its partition is
redone and the tables equal those of one clean unpartitioned run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg

from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.drills.base import DrillOptions, DrillResult, Teardown, private_dir, wait_until
from vitalflow.generate import generate
from vitalflow.partitions import claims
from vitalflow.partitions.run import run_partitioned
from vitalflow.partitions.worker import ProcessWorkers, write_settings
from vitalflow.privacy.keys import new_key_text, write_key_file
from vitalflow.services import EmbeddedPostgres, free_port

PARTS = 4
OBSERVATIONS_PER_PATIENT = 18  # about what generate() writes per patient with 6 visits
# The rows a run leaves, without the columns that say when (they differ between any two runs).
FINGERPRINT = {
    "refined.patient": "patient_key, person_key, gender, birth_date, version, raw_record_id",
    "refined.observation": "observation_id, patient_key, measure, value, effective_at, "
                           "raw_record_id",
    "refined.quarantine": "raw_record_id, reason",
    "refined.observation_pending": "observation_id",
    "derived.patient_bmi_latest": "patient_key, sex, height_cm, weight_kg, bmi, "
                                  "weight_category, age_years",
    "derived.age_band_summary": "age_band, sex, weight_category, patients, mean_bmi",
}


def run(options: DrillOptions, teardown: Teardown) -> DrillResult:
    observations = options.observations or (20_000 if options.quick else 1_000_000)
    workdir = options.workdir
    server = EmbeddedPostgres(private_dir(workdir / "postgres"), free_port())
    teardown.callback(server.down)
    server.up()
    # One pseudonymisation key for every run, so their pseudonyms can be compared.
    write_key_file(workdir / "pseudonym.key", new_key_text())
    source = workdir / "input"
    report = generate(source, max(10, observations // OBSERVATIONS_PER_PATIENT), seed=18,
                      defect_rate=0.02, duplicate_share=0.05)
    reference = _clean_run(server, workdir, source)
    details: dict = {"observations": report.observations, "patients": report.patients,
                     "partitions": PARTS, "clean_run_s": reference["seconds"],
                     "obs_per_s": {}, "run_s": {}}
    exact = []
    for workers in (1, 2):
        outcome = _partitioned(server, workdir, source, teardown, workers)
        details["obs_per_s"][str(workers)] = round(report.observations / outcome["seconds"])
        details["run_s"][str(workers)] = round(outcome["seconds"], 2)
        exact.append(outcome["fingerprint"] == reference["fingerprint"])
    killed = _partitioned(server, workdir, source, teardown, 2, kill=True)
    exact.append(killed["fingerprint"] == reference["fingerprint"])
    details.update(partitions_redone=killed["redone"], killed=killed["killed"],
                   kill_run_s=round(killed["seconds"], 2),
                   counts_exact_per_run={"1 worker": exact[0], "2 workers": exact[1],
                                         "2 workers, one killed": exact[2]})
    notes = ["obs_per_s: observations read / (refine + derive seconds), ingest excluded; "
             "each worker is one process (refine.worker_process_min_records raised), "
             f"{PARTS} partitions; the machine has 2 cores shared with other work"]
    ok = all(exact) and killed["redone"] >= 1 and killed["killed"] is not None
    return DrillResult("worker-scaling", ok, counts_exact=all(exact), acknowledged_lost=0
                       if all(exact) else None,
                       extra_run_s=round(killed["seconds"] - details["run_s"]["2"], 2),
                       details=details, notes=notes)


def _settings(server: EmbeddedPostgres, workdir: Path, name: str):
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} OWNER vitalflow")
    return load_settings(paths={"home": private_dir(workdir / name)},
                         database={"url": server.url(name)},
                         privacy={"key_file": workdir / "pseudonym.key"},
                         refine={"worker_process_min_records": 10**12})


def _clean_run(server: EmbeddedPostgres, workdir: Path, source: Path) -> dict:
    settings = _settings(server, workdir, "clean")
    with pipeline.PipelineRun(settings) as clean:
        clean.ingest(source)
        start = time.perf_counter()
        clean.refine()
        clean.derive()
        seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "fingerprint": fingerprint(settings.database.url)}


def _partitioned(server: EmbeddedPostgres, workdir: Path, source: Path, teardown: Teardown,
                 workers: int, kill: bool = False) -> dict:
    name = f"workers_{workers}" + ("_killed" if kill else "")
    settings = _settings(server, workdir, name)
    url = settings.database.url
    killer = _Killer(url) if kill else None
    execute = ProcessWorkers(write_settings(settings, workdir / name / "settings.json"),
                             workers, url, started=teardown.process, watch=killer,
                             timeout=600 if killer is None else 900)
    with pipeline.PipelineRun(settings) as partitioned:
        partitioned.ingest(source)
        start = time.perf_counter()
        run_partitioned(partitioned, PARTS, execute)
        seconds = time.perf_counter() - start
    with psycopg.connect(url) as conn:
        attempts = conn.execute("SELECT coalesce(sum(attempts - 1), 0) FROM "
                                "meta.partition_claim WHERE run_id = %s",
                                (partitioned.run_id,)).fetchone()[0]
    return {"seconds": seconds, "fingerprint": fingerprint(url), "redone": int(attempts),
            "killed": killer.killed if killer else None}


class _Killer:
    """watch() for ProcessWorkers: SIGKILL to the first worker seen in the middle of a refine
    partition (a claim it holds, not done, for a moment), once."""

    def __init__(self, url: str, after: float = 0.5) -> None:
        self.url = url
        self.after = after
        self.seen: float | None = None
        self.killed: dict | None = None

    def __call__(self, run_id: str, stage: str, workers: list) -> None:
        if self.killed or stage != "refine":
            return
        by_pid = {w.pid: w for w in workers if w.poll() is None}
        with psycopg.connect(self.url, autocommit=True) as conn:
            running = [s for s in claims.states(conn, run_id, stage)
                       if s["state"] == "running"
                       and int(s["worker"].rsplit(":", 1)[1]) in by_pid]
        if not running:
            return
        self.seen = self.seen or time.monotonic()
        if time.monotonic() - self.seen < self.after:
            return
        victim = running[0]
        pid = int(victim["worker"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)  # one of the processes this drill started
        wait_until(lambda: by_pid[pid].poll() is not None, 30, what="killed worker gone")
        self.killed = {"stage": stage, "partition": victim["part"]}


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Per table: rows and an md5 over them in a fixed order."""
    out = {}
    with psycopg.connect(url) as conn:
        for table, columns in FINGERPRINT.items():
            out[table] = tuple(conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) "
                f"FROM (SELECT {columns} FROM {table}) r").fetchone())
    return out
