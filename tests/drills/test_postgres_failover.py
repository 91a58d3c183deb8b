"""The quick PostgreSQL drills on a real Patroni cluster: the leader's postmaster killed
mid-refine costs no acknowledged write and the run still ends with exactly a clean run's rows;
the replicas serve the benchmark's reads while the pipeline writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vitalflow.drills.base import DrillOptions
from vitalflow.drills.pg_cluster import INSTALL_HINT, PROJECT, missing_tools
from vitalflow.drills.runner import drill_workdir, run_drill
from vitalflow.processes import alive

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir():
    """Under the project's .vitalflow, not pytest's /tmp/pytest-of-USER: other pytest
    sessions of the same user prune that folder's older runs, servers' data included."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: {INSTALL_HINT}")
    folder = drill_workdir(PROJECT / ".vitalflow", "test-postgres-failover")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_leader_killed_mid_refine_loses_no_acknowledged_row(workdir: Path):
    result = run_drill("postgres-failover", DrillOptions(workdir=workdir, quick=True))

    kill = result.details["scenarios"]["leader_kill"]
    assert result.ok, (result.notes, result.details)
    assert result.acknowledged_lost == 0
    assert result.counts_exact is True
    assert kill["old_leader"] != kill["new_leader"]
    assert kill["probe_acks"] > 10  # the probe did write, before and after the failover
    assert 0 < result.rto_s < 120
    assert result.extra_run_s is not None
    # asynchronous mode is measured too (its losses are shown, not judged)
    assert result.details["scenarios"]["leader_kill_async"]["run_exit"] == 0
    line = json.loads(result.json_line())
    assert line["drill"] == "postgres-failover" and line["acknowledged_lost"] == 0
    # nothing the drill started outlives it
    pidfiles = list(workdir.glob("cluster/pg*/data/postmaster.pid"))
    for pidfile in pidfiles:
        assert not alive(int(pidfile.read_text().split()[0]))


def test_replicas_serve_the_benchmark_reads_while_the_pipeline_writes(workdir: Path):
    result = run_drill("replica-reads", DrillOptions(workdir=workdir, quick=True))

    assert result.ok, (result.notes, result.details)
    assert result.details["replica_port_is_replica"] is True
    throughput = result.details["read_throughput_qps"]
    assert set(throughput) == {"0_replicas", "1_replicas", "2_replicas"}
    for served in throughput.values():
        assert served["errors"] == 0 and served["queries"] > 0
    assert result.details["lag_samples"] > 0 and result.details["load_runs"] >= 1
