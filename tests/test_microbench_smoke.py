"""The micro-benchmarks in benchmarks/micro still run: each once, untimed, in a child pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_micro_benchmarks_run_once() -> None:
    pytest.importorskip("pytest_benchmark", reason="pytest-benchmark is not installed (it is in "
                        "the bench extra: pip install -e '.[bench]')")
    # A child process: benchmarks/micro has its own conftest and is outside testpaths.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/micro", "--benchmark-disable", "-q",
         "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
