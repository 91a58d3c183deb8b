"""Drill object-store-loss: a volume server killed mid lakehouse run loses nothing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psutil
import pytest

from vitalflow.drills.base import DrillOptions, Teardown
from vitalflow.drills.object_store_loss import Probe
from vitalflow.drills.runner import run_drill
from vitalflow.drills.seaweed_cluster import SeaweedCluster


@pytest.fixture
def workdir():
    """Not under pytest's basetemp, which another session may prune while servers run."""
    root = Path(tempfile.mkdtemp(prefix="vitalflow-test-drill-store-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _started_under(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(folder) in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


@pytest.mark.slow
def test_quick_drill_loses_no_data_and_stops_what_it_started(workdir):
    result = run_drill("object-store-loss", DrillOptions(workdir=workdir, quick=True))

    assert result.ok, (result.notes, result.details)
    assert result.details["killed_while_running"]
    assert result.acknowledged_lost == 0 and result.counts_exact
    assert result.details["derived_rows_equal"]
    assert result.details["objects_unreadable"] == 0 and result.details["objects_read"] > 0
    assert result.details["rows"]["refined.observation"] > 0
    assert result.details["under_replicated_volumes"] > 0  # the kill did take copies away
    assert result.rto_s is not None and result.extra_run_s is not None
    assert result.details["kill_to_replicated_s"] > 0
    assert not _started_under(workdir)


def test_outage_counts_overlapping_failed_and_stalled_writes_once():
    probe = Probe.__new__(Probe)
    probe.attempts = [(0.0, 0.1, True),    # before the kill: not counted
                      (10.0, 10.2, True),  # fine
                      (10.3, 12.3, True),  # stalled 2 s
                      (12.0, 13.0, False),  # failed, overlapping the stall by 0.3 s
                      (14.0, 14.1, True)]
    seconds, failures, stalls = probe.disrupted(since=5.0)
    assert seconds == pytest.approx(2.7)
    assert (failures, stalls) == (1, 1)


def test_cluster_listens_on_loopback_only_and_keeps_two_copies(workdir):
    with Teardown() as teardown:
        cluster = SeaweedCluster(workdir / "seaweedfs")
        cluster.up(teardown)
        fs = cluster.filesystem()
        with fs.open_output_stream("probe/one") as out:
            out.write(b"x" * 1000)
        processes = [psutil.Process(p.pid) for p in cluster.processes.values()]
        listening = {(c.laddr.ip, c.laddr.port) for p in processes
                     for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        assert {ip for ip, _ in listening} == {"127.0.0.1"}
        assert {cluster.ports["s3"], cluster.ports["master"]} <= {port for _, port in listening}
        assert len(cluster.data_nodes()) == 3 and not cluster.under_replicated()
        held = [volumes for volumes in cluster.data_nodes().values() if volumes]
        assert len(held) >= 2  # each volume on two servers
    assert not _started_under(workdir)
