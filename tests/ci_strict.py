"""In CI (CI=true) a test skipped for want of ../shared, locust, pytest-benchmark or the failover
drills' etcd/HAProxy/Patroni fails: the CI
machine has them, so such a skip means a prerequisite went missing, not that it is optional."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
# A skip whose reason names one of these is a missing CI prerequisite.
PREREQUISITES = (str(SHARED), "../shared", "locust", "pytest-benchmark", "pytest_benchmark",
                 "infra/ha/install.sh")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def missing_prerequisite(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """The skip reason when the report is a skip for a missing prerequisite, else None."""
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    return reason if any(p in reason for p in PREREQUISITES) else None


def _fail(report, reason: str) -> None:
    report.outcome = "failed"
    report.longrepr = f"CI=true, so this skip is a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    reason = missing_prerequisite(report) if in_ci() else None
    if reason:
        _fail(report, reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    reason = missing_prerequisite(report) if in_ci() else None
    if reason:
        _fail(report, reason)
