"""Issue 12 chaos suite, short form: runs killed with kill -9 (the process group, or the
postmaster) at random points, then re-run, leave exactly the state of one clean run.
The long form with every target: `vitalflow drill chaos --seconds 1800` (docs/robustness.md)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from vitalflow.drills.base import DrillOptions, Teardown
from vitalflow.drills.chaos import drill

pytestmark = pytest.mark.slow


def test_killed_runs_recover_to_the_state_of_one_clean_run():
    # Not under pytest's basetemp: the embedded server's user must pass through the folder.
    work = Path(tempfile.mkdtemp(prefix="vitalflow-chaos-test-"))
    try:
        with Teardown() as teardown:
            tally = drill(DrillOptions(workdir=work / "drill", quick=True, observations=500),
                          teardown, targets=("pipeline", "database"), seed=7)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    assert tally.trials == 2
    assert (tally.unrecovered, tally.mismatches) == (0, 0), tally.failures
