"""The drill teardown stops what a drill started, even when it fails, and only that."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vitalflow.drills import DRILLS
from vitalflow.drills.base import DrillResult, Teardown, wait_until
from vitalflow.drills.runner import save
from vitalflow.processes import alive


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_teardown_stops_started_processes_when_the_drill_fails():
    process = _sleeper()
    with pytest.raises(RuntimeError), Teardown() as teardown:
        teardown.process(process, grace=2)
        raise RuntimeError("drill broke")
    assert not alive(process.pid)


def test_teardown_leaves_a_process_it_was_not_given_alone():
    bystander = _sleeper()
    try:
        with Teardown() as teardown:
            teardown.process(_sleeper(), grace=2)
        assert alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()


def test_results_merge_into_one_file_per_drill(tmp_path):
    save([DrillResult("chaos", ok=True, details={"trials": 3})], tmp_path)
    path = save([DrillResult("postgres-failover", ok=False, rto_s=4.2)], tmp_path)
    kept = json.loads(path.read_text())
    assert set(kept) == {"chaos", "postgres-failover"}
    assert kept["postgres-failover"]["rto_s"] == 4.2


def test_every_drill_module_is_named_once():
    modules = [module for module, _ in DRILLS.values()]
    assert len(modules) == len(set(modules))


def test_a_pidfile_counts_only_while_its_process_runs_with_the_marker(tmp_path):
    from vitalflow.processes import pid_from_file, terminate

    process = _sleeper()
    pidfile = tmp_path / "server.pid"
    pidfile.write_text(str(process.pid))
    # Right after fork the child still shows the parent's command line, until it execs.
    wait_until(lambda: pid_from_file(pidfile, "time.sleep(60)") == process.pid, 20,
               what="the sleeper's command line")
    assert pid_from_file(pidfile, "some-other-server.conf") is None  # a recycled pid
    terminate(process.pid, grace=2)
    assert pid_from_file(pidfile, "time.sleep(60)") is None
    pidfile.write_text("garbage")
    assert pid_from_file(pidfile, "x") is None
    assert pid_from_file(tmp_path / "absent.pid", "x") is None
