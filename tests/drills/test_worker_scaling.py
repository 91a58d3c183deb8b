"""A worker killed with SIGKILL in the middle of a partition: the partition is done again by
another worker and the tables equal those of one clean run (process workers, then the drill's
Prefect pool)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.test_pipeline import snapshot
from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.drills.base import DrillOptions, Teardown
from vitalflow.drills.worker_scaling import Stage
from vitalflow.generate import generate
from vitalflow.partitions import claims
from vitalflow.partitions.run import run_partitioned
from vitalflow.partitions.worker import ProcessWorkers, write_settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class KillFirstRefine:
    """ProcessWorkers' watch: SIGKILL to the first worker seen holding a refine partition."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.killed: int | None = None

    def __call__(self, run_id: str, stage: str, workers: list) -> None:
        if self.killed is not None or stage != "refine":
            return
        ours = {w.pid for w in workers if w.poll() is None}
        with psycopg.connect(self.url, autocommit=True) as conn:
            for state in claims.states(conn, run_id, stage):
                pid = int((state["worker"] or ":0").rsplit(":", 1)[1])
                if state["state"] == "running" and pid in ours:
                    os.kill(pid, signal.SIGKILL)
                    self.killed = state["part"]
                    return


def _database(pg_server, name: str) -> str:
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} OWNER vitalflow")
    return pg_server.url(name)


def test_a_killed_process_workers_partition_is_redone_and_nothing_doubled(tmp_path, pg_server):
    source = tmp_path / "input"
    generate(source, 400, seed=5, defect_rate=0.05, duplicate_share=0.1)
    clean = load_settings(paths={"home": tmp_path / "clean"},
                          database={"url": _database(pg_server, "ws_clean")})
    expected = pipeline.run(clean, source)

    url = _database(pg_server, "ws_killed")
    settings = load_settings(paths={"home": tmp_path / "killed"}, database={"url": url})
    killer = KillFirstRefine(url)
    (tmp_path / "killed").mkdir(mode=0o700)
    workers = ProcessWorkers(write_settings(settings, tmp_path / "killed" / "settings.json"),
                             2, url, watch=killer, timeout=300)
    with Teardown() as teardown:
        workers.started = teardown.process
        with pipeline.PipelineRun(settings) as run:
            run.ingest(source)
            run_partitioned(run, 4, workers)
    assert killer.killed is not None
    with psycopg.connect(url) as conn:
        attempts = dict(conn.execute("SELECT part, attempts FROM meta.partition_claim "
                                     "WHERE stage = 'refine'").fetchall())
    assert attempts[killer.killed] == 2  # redone once, by another worker
    assert run.summary()["counts"] == expected["counts"]
    assert snapshot(url) == snapshot(clean.database.url)


def test_a_killed_flow_run_on_the_prefect_pool_is_redone():
    """The drill's own scenario, on its quick data: Prefect server, 2 process workers. Not
    under pytest's basetemp: another pytest session may prune it while the servers run."""
    workdir = Path(tempfile.mkdtemp(prefix="vitalflow-worker-scaling-"))
    with Teardown() as teardown:
        teardown.callback(shutil.rmtree, workdir, ignore_errors=True)
        stage = Stage(DrillOptions(workdir, quick=True, observations=6000), teardown)
        stage.up()
        reference = stage.clean_run()
        killed = stage.partitioned(2, kill=True)
    assert killed["killed"]["reclaimed_after_s"] > 0  # claimed again after the kill
    assert killed["redone"] >= 1 and killed["resubmitted"] >= 1
    assert killed["fingerprint"] == reference["fingerprint"]  # nothing lost or doubled
    assert killed["read"] >= 6000
