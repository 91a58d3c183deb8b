"""Issue 12 chaos suite, short form: runs killed with kill -9 (process group, sometimes the
postmaster too) at random points, then re-run, leave exactly the state of one clean run.
The long form: `python -m benchmarks.chaos.drill --trials 50` (docs/robustness.md)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from benchmarks.chaos.drill import drill

pytestmark = pytest.mark.slow


def test_killed_runs_recover_to_the_state_of_one_clean_run():
    # Not under pytest's basetemp: the embedded server's user must pass through the folder.
    work = Path(tempfile.mkdtemp(prefix="vitalflow-chaos-test-"))
    try:
        report = drill(trials=3, patients=20, seed=7, work=work, progress=lambda _: None)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    assert report.trials == 3
    assert (report.unrecovered, report.mismatches) == (0, 0), report.failures
