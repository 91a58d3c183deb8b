"""The audit benchmark runs end to end on a tiny input (exercised, never timed)."""

from __future__ import annotations

import pytest

from benchmarks.audit import report, run_overhead, verify_speed
from benchmarks.machine import machine_info
from vitalflow.audit import runs
from vitalflow.generate import generate

pytestmark = pytest.mark.postgres


def test_audit_benchmark_smoke(pg_server, tmp_path):
    generate(tmp_path / "in", 10, seed=1)
    started = runs.RunAudit.started
    result = {"measured_at": "now", "size": "tiny", "note": "smoke", "machine": machine_info(),
              "run": run_overhead(pg_server, tmp_path / "in", tmp_path, 1),
              "verify": verify_speed(pg_server, 500, tmp_path, 1)}
    assert runs.RunAudit.started is started  # the timing wrappers are gone again
    assert result["verify"]["events"] == 500 and len(result["run"]["hook_seconds"]) == 1
    assert "audit verify" in report(result)
