"""Issue 12, defect 4: runs started at the same time on one project both succeed."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustness.runs import accounted, finish, lines_in, project_env, start, vitalflow
from vitalflow.generate import generate

pytestmark = pytest.mark.slow


def _inputs(root: Path, seeds: list[int]) -> list[Path]:
    folders = []
    for seed in seeds:
        folder = root / f"in-{seed}"
        generate(folder, 25, seed=seed, defect_rate=0.1)
        folders.append(folder)
    return folders


def _together(env: dict, folders: list[Path]) -> int:
    """Start one run per folder at once; all must succeed. Records they read in all."""
    processes = [start(env, "run", "--input", str(folder), "--json") for folder in folders]
    total = 0
    for process in processes:
        code, summary, err = finish(process)
        assert code == 0, err[-3000:]
        total += accounted(summary)
    return total


def test_concurrent_first_runs_and_runs_on_an_existing_project(project_dir: Path):
    env = project_env(project_dir / "home")
    first, second, third, fourth = _inputs(project_dir, [1, 2, 3, 4])
    try:
        # First start of a fresh project, different inputs.
        assert _together(env, [first, second]) == lines_in(first) + lines_in(second)
        # An existing project: different inputs, then the same input twice.
        assert _together(env, [third, fourth]) == lines_in(third) + lines_in(fourth)
        same = project_dir / "in-5"
        generate(same, 25, seed=5, defect_rate=0.1)
        assert _together(env, [same, same]) == lines_in(same)
    finally:
        vitalflow(env, "services", "down")
