"""The real stack end to end: a run's metrics reach Prometheus; broken things alert the webhook
receiver within the (test) rule's `for` plus a margin and resolve after the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitalflow import pipeline
from vitalflow.generate import generate

pytestmark = pytest.mark.postgres


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    folder = tmp_path / "sample"
    generate(folder, 40, seed=7, defect_rate=0.05)
    return folder


def test_run_metrics_reach_prometheus(monitoring_stack, settings, sample):
    s = monitoring_stack.settings(settings)
    summary = pipeline.run(s, sample)
    where = f'instance="{s.monitoring.instance}"'
    read = summary["counts"]["Observation"]["read"]
    result = monitoring_stack.wait_query(
        f'vitalflow_records{{{where}, resource="Observation", outcome="read"}}')
    assert float(result[0]["value"][1]) == read
    assert result[0]["metric"]["profile"] == "postgres"
    assert monitoring_stack.query(f"vitalflow_run_success{{{where}}}")[0]["value"][1] == "1"
    reasons = {r["metric"]["reason"]: float(r["value"][1]) for r in monitoring_stack.query(
        f"vitalflow_quarantine_records{{{where}}}")}
    assert reasons == {k: float(v) for k, v in summary["quarantine_reasons"].items()}
    layers = {r["metric"]["layer"] for r in monitoring_stack.query(
        f"vitalflow_storage_bytes{{{where}}} > 0")}
    assert layers == {"raw", "refined", "derived"}
    assert monitoring_stack.query(f"vitalflow_database_connections{{{where}}} > 0")
    assert monitoring_stack.query(
        f'vitalflow_derived_last_success_timestamp_seconds{{{where}, '
        f'table="derived.patient_bmi_latest"}}')
    # Low cardinality: no label value looks like a pseudonym or a record id.
    series = monitoring_stack.query(f'{{job="vitalflow", {where}}}')
    assert not [s["metric"] for s in series if any(
        v.startswith("p_") or "-" in v and len(v) > 40 for v in s["metric"].values())]
    monitoring_stack.forget(s)


def test_failed_run_alerts_and_resolves(monitoring_stack, settings, sample, tmp_path):
    s = monitoring_stack.settings(settings)
    with pytest.raises(Exception, match="does not exist"):
        pipeline.run(s, tmp_path / "no-such-input")
    labels = {"instance": s.monitoring.instance, "profile": "postgres"}
    alert = monitoring_stack.wait_alert("VitalflowRunFailed", "firing", **labels)
    assert alert["labels"]["severity"] == "critical"
    pipeline.run(s, sample)  # the fix: a run that succeeds
    monitoring_stack.wait_alert("VitalflowRunFailed", "resolved", **labels)
    monitoring_stack.forget(s)


def test_thresholds_crossed_alert_and_resolve(monitoring_stack, settings, sample):
    """Thresholds the run's metrics cross: quarantine share, table freshness, time since the
    last success, free disk space; each alert resolves when the next push carries
    thresholds that hold."""
    crossed = {"quarantine_share_max": 0.001, "expected_run_interval_hours": 1e-4,
               "freshness_target_hours": {"derived.patient_bmi_latest": 1e-4},
               "storage_free_ratio_min": 0.99999}
    s = monitoring_stack.settings(settings, **crossed)
    pipeline.run(s, sample)
    labels = {"instance": s.monitoring.instance}
    alerts = ("VitalflowQuarantineShareHigh", "VitalflowDerivedTableStale",
              "VitalflowNoRecentSuccess", "VitalflowStorageNearlyFull")
    fired = {name: monitoring_stack.wait_alert(name, "firing", **labels) for name in alerts}
    assert fired["VitalflowDerivedTableStale"]["labels"]["table"] == "derived.patient_bmi_latest"
    for name, alert in fired.items():
        assert alert["annotations"]["runbook"] == f"docs/monitoring.md#{name.lower()}"
    # The fix: the default thresholds, pushed with the next run.
    defaults = type(s.monitoring)()
    fixed = s.model_copy(update={"monitoring": s.monitoring.model_copy(update={
        name: getattr(defaults, name) for name in crossed})})
    pipeline.run(fixed, sample)
    for name in alerts:
        monitoring_stack.wait_alert(name, "resolved", **labels)
    monitoring_stack.forget(s)


def test_terminology_server_stopped(monitoring_stack, settings, sample, tmp_path):
    """The scraped server down alerts; a run against it parks observations with the circuit
    open; all resolve once the server is back and a run succeeds."""
    s = monitoring_stack.settings(settings)
    s = s.model_copy(update={"terminology": s.terminology.model_copy(update={
        "base_url": monitoring_stack.terminology_url, "retries": 0})})
    # A first run records "nothing parked" (without terminology checks, so no code is cached).
    pipeline.run(s.model_copy(update={"terminology": s.terminology.model_copy(
        update={"enabled": False})}), sample)
    later = tmp_path / "later"
    generate(later, 20, seed=8)
    monitoring_stack.terminology.stop()
    try:
        summary = pipeline.run(s, later)
        assert summary["counts"]["Observation"]["pending"] > 0
        labels = {"instance": s.monitoring.instance}
        monitoring_stack.wait_alert("VitalflowServiceDown", "firing", service="terminology")
        monitoring_stack.wait_alert("VitalflowTerminologyCircuitOpen", "firing", **labels)
        monitoring_stack.wait_alert("VitalflowParkedObservationsGrowing", "firing", timeout=90,
                                    **labels)
    finally:
        monitoring_stack.terminology.start()
    summary = pipeline.run(s, later)
    assert summary["counts"]["Observation"]["pending"] == 0
    monitoring_stack.wait_alert("VitalflowServiceDown", "resolved", service="terminology")
    monitoring_stack.wait_alert("VitalflowTerminologyCircuitOpen", "resolved", **labels)
    monitoring_stack.wait_alert("VitalflowParkedObservationsGrowing", "resolved", **labels)
    monitoring_stack.forget(s)
