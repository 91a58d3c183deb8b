"""The chaos drill, quick: one kill -9 of each target (pipeline, database, object store,
terminology server), every one recovered to the state of one clean run, nothing left running."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from vitalflow.drills.base import DrillOptions
from vitalflow.drills.chaos import TARGETS
from vitalflow.drills.runner import run_drill

pytestmark = pytest.mark.slow


def _processes_under(folder: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_every_kill_is_recovered_and_everything_started_is_stopped():
    # Not under pytest's basetemp: the embedded server's user must pass through the folder.
    work = Path(tempfile.mkdtemp(prefix="vitalflow-chaos-test-"))
    try:
        result = run_drill("chaos", DrillOptions(workdir=work / "drill", quick=True))
        leftovers = _processes_under(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    assert result.ok, "\n".join(result.notes)  # in full: which target, when, which tables
    assert result.details["kills"] == {target: 1 for target in TARGETS}
    assert result.details["recovered"] == result.details["trials"] == len(TARGETS)
    assert result.counts_exact and result.rto_s is not None
    assert leftovers == []
