"""CI=true turns skips for a missing ../shared, locust or pytest-benchmark into failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = '''
import pytest

def test_needs_shared():
    pytest.skip("Synthea reference data not found at /nowhere (../shared is beside the project)")

def test_needs_locust():
    pytest.skip("locust is not installed")

@pytest.mark.skipif(True, reason="a measurement: set VITALFLOW_BENCH=1")
def test_opt_in():
    pass

def test_plain():
    pass
'''


@pytest.mark.parametrize(("ci", "expected"), [("true", "2 failed, 1 passed, 1 skipped"),
                                              ("", "1 passed, 3 skipped")])
def test_missing_prerequisites_fail_only_in_ci(tmp_path, ci, expected):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT / "tests")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "ci_strict", "-q",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert expected in done.stdout, done.stdout[-3000:]
    if ci:
        assert "CI=true, so this skip is a failure: locust is not installed" in done.stdout
