"""worker-scaling drill: refine and derive in person-hash partitions, one Prefect deployment run
per partition on a process work pool with 1 and 2 workers (throughput), then a worker's flow run
killed with SIGKILL mid-partition: its partition is redone and the tables equal those of one
clean unpartitioned run."""

from __future__ import annotations

import os
import signal
import time

import psycopg

from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.drills.base import DrillOptions, DrillResult, Teardown, private_dir
from vitalflow.generate import generate
from vitalflow.partitions.pool import PrefectPool
from vitalflow.partitions.worker import write_settings
from vitalflow.drills.state import state_at
from vitalflow.privacy.keys import new_key_text, write_key_file
from vitalflow.services import EmbeddedPostgres, free_port

OBSERVATIONS_PER_PATIENT = 16  # about what generate() writes per patient with 6 visits
class Stage:
    """What the drill's scenarios share: the database server, the input, one key, the pool."""

    def __init__(self, options: DrillOptions, teardown: Teardown) -> None:
        self.workdir = options.workdir
        self.observations = options.observations or (20_000 if options.quick else 1_000_000)
        self.parts = 2 if options.quick else 4  # each flow run costs seconds to start
        self.teardown = teardown
        self.server: EmbeddedPostgres | None = None
        self.pool = PrefectPool(self.workdir / "prefect")
        self.source = self.workdir / "input"
        self.key = self.workdir / "pseudonym.key"

    def up(self) -> dict:
        """Starts PostgreSQL, the Prefect server and pool; writes the input; its figures."""
        self.server = EmbeddedPostgres(private_dir(self.workdir / "postgres"), free_port())
        self.teardown.callback(self.server.down)
        self.server.up()
        self.teardown.callback(self.pool.down)
        self.pool.up()
        # One pseudonymisation key for every run, so their pseudonyms can be compared.
        write_key_file(self.key, new_key_text())
        report = generate(self.source, max(10, self.observations // OBSERVATIONS_PER_PATIENT),
                          seed=18, defect_rate=0.02, duplicate_share=0.05)
        return {"observations": report.observations, "patients": report.patients}

    def settings(self, name: str):
        with psycopg.connect(self.server.admin_url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name} OWNER vitalflow")
        return load_settings(paths={"home": private_dir(self.workdir / name)},
                             database={"url": self.server.url(name)},
                             privacy={"key_file": self.key},
                             refine={"worker_process_min_records": 10**12})

    def clean_run(self) -> dict:
        """The reference: one unpartitioned run in this process."""
        settings = self.settings("clean")
        with pipeline.PipelineRun(settings) as clean:
            clean.ingest(self.source)
            start = time.perf_counter()
            clean.refine()
            clean.derive()
            seconds = time.perf_counter() - start
        return {"seconds": round(seconds, 2), "fingerprint": state_at(settings.database.url)}

    def partitioned(self, workers: int, kill: bool = False) -> dict:
        """A run on the pool with this many workers; kill: one flow run killed mid-partition."""
        name = f"workers_{workers}" + ("_killed" if kill else "")
        settings = self.settings(name)
        url = settings.database.url
        killer = _Killer(url, self.pool) if kill else None
        self.pool.workers(workers)
        summary = self.pool.run(write_settings(settings, self.workdir / name / "settings.json"),
                                self.source, self.parts, self.workdir / name / "summary.json",
                                watch=killer or (lambda: None))
        with psycopg.connect(url) as conn:
            redone = conn.execute("SELECT coalesce(sum(attempts - 1), 0) FROM "
                                  "meta.partition_claim").fetchone()[0]
            if killer and killer.killed:  # its partition's last claim: the redo
                killer.killed["reclaimed_after_s"] = round(conn.execute(
                    "SELECT extract(epoch FROM claimed_at)::float8 FROM meta.partition_claim WHERE "
                    "stage = 'refine' AND part = %s", (killer.killed["partition"],)
                ).fetchone()[0] - killer.killed.pop("at"), 2)
        return {"seconds": summary["seconds"]["refine"] + summary["seconds"]["derive"],
                "read": sum(c["read"] for c in summary["counts"].values()),
                "fingerprint": state_at(url), "redone": int(redone),
                "resubmitted": summary["resubmitted"],
                "killed": killer.killed if killer else None}


def run(options: DrillOptions, teardown: Teardown) -> DrillResult:
    stage = Stage(options, teardown)
    details = stage.up() | {"partitions": stage.parts}
    reference = stage.clean_run()
    details.update(clean_run_s=reference["seconds"], obs_per_s={}, run_s={})
    exact = {}
    for workers in (1, 2):
        outcome = stage.partitioned(workers)
        details["obs_per_s"][str(workers)] = round(details["observations"] / outcome["seconds"])
        details["run_s"][str(workers)] = round(outcome["seconds"], 2)
        exact[f"{workers} worker(s)"] = outcome["fingerprint"] == reference["fingerprint"]
    killed = stage.partitioned(2, kill=True)
    exact["2 workers, one killed"] = killed["fingerprint"] == reference["fingerprint"]
    details.update(partitions_redone=killed["redone"], flow_runs_resubmitted=killed["resubmitted"],
                   killed=killed["killed"], kill_run_s=round(killed["seconds"], 2),
                   counts_exact_per_run=exact)
    notes = [("obs_per_s: observations / (refine + derive seconds of the run), ingest "
              "excluded; every partition is one Prefect flow run in a new process (seconds to "
              "start), each worker takes one at a time; the machine has 2 cores shared with "
              "other work")]
    counts_exact = all(exact.values())
    ok = counts_exact and killed["redone"] >= 1 and killed["killed"] is not None
    # Time without progress on the killed partition: from the kill to its claim by a new run.
    rto = (killed["killed"] or {}).get("reclaimed_after_s")
    return DrillResult("worker-scaling", ok, rto_s=rto, counts_exact=counts_exact,
                       acknowledged_lost=0 if counts_exact else None,
                       extra_run_s=round(killed["seconds"] - details["run_s"]["2"], 2),
                       details=details, notes=notes)


class _Killer:
    """watch() for the pool: SIGKILL to the first flow run (of this pool's workers) seen in
    the middle of a refine partition for a moment, once."""

    def __init__(self, url: str, pool: PrefectPool, after: float = 0.5) -> None:
        self.url = url
        self.pool = pool
        self.after = after
        self.seen: float | None = None
        self.killed: dict | None = None

    def __call__(self) -> None:
        if self.killed:
            return
        with psycopg.connect(self.url, autocommit=True) as conn:
            if conn.execute("SELECT to_regclass('meta.partition_claim')").fetchone()[0] is None:
                return
            running = conn.execute("SELECT part, worker FROM meta.partition_claim WHERE "
                                   "stage = 'refine' AND state = 'running'").fetchall()
        running = [(part, int(worker.rsplit(":", 1)[1])) for part, worker in running
                   if self.pool.started_by_workers(int(worker.rsplit(":", 1)[1]))]
        if not running:
            return
        self.seen = self.seen or time.monotonic()
        if time.monotonic() - self.seen < self.after:
            return
        part, pid = running[0]
        os.kill(pid, signal.SIGKILL)  # a flow run of a worker this drill started
        self.killed = {"stage": "refine", "partition": part, "at": time.time()}
