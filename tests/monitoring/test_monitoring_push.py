"""Monitoring down never fails a run; the terminology server serves /metrics."""

from __future__ import annotations

import logging

import httpx
import pytest

from vitalflow import pipeline
from vitalflow.generate import generate
from vitalflow.monitoring.run_metrics import build_registry, dropped_pushes, push_run_metrics
from vitalflow.services import free_port


@pytest.mark.postgres
def test_pushgateway_down_never_fails_a_run(settings, tmp_path, caplog):
    generate(tmp_path / "in", 20, seed=3)
    down = settings.model_copy(update={"monitoring": settings.monitoring.model_copy(update={
        "pushgateway_url": f"http://ops:s3cret@127.0.0.1:{free_port()}",
        "push_timeout_seconds": 1})})
    with caplog.at_level(logging.WARNING, logger="vitalflow.monitoring"):
        summary = pipeline.run(down, tmp_path / "in")
    assert summary["counts"]["Observation"]["read"] > 0
    assert "run metrics dropped" in caplog.text and "s3cret" not in caplog.text
    assert dropped_pushes(down) == 1
    assert not push_run_metrics(summary, down)
    assert dropped_pushes(down) == 2
    pushed = build_registry(summary, down).get_sample_value(
        "vitalflow_monitoring_dropped_pushes_total")
    assert pushed == 2
    state = down.paths.root / "monitoring" / "dropped_pushes.json"
    assert state.stat().st_mode & 0o077 == 0


def test_disabled_monitoring_pushes_nothing(tmp_path):
    from vitalflow.config import load_settings

    off = load_settings(paths={"home": tmp_path}, monitoring={
        "enabled": False, "pushgateway_url": f"http://127.0.0.1:{free_port()}"})
    assert not push_run_metrics({"outcome": "failed", "seconds": {}}, off)
    assert dropped_pushes(off) == 0


def test_failed_run_metrics_carry_outcome_only(tmp_path):
    from vitalflow.config import load_settings

    registry = build_registry({"outcome": "failed", "error": "IngestError",
                               "seconds": {"total": 1.5}}, load_settings(
        paths={"home": tmp_path}))
    assert registry.get_sample_value("vitalflow_run_success",
                                     {"flow": "vitalflow-pipeline"}) == 0
    assert registry.get_sample_value("vitalflow_run_last_failure_timestamp_seconds",
                                     {"flow": "vitalflow-pipeline", "error": "IngestError"})
    assert registry.get_sample_value("vitalflow_run_last_success_timestamp_seconds",
                                     {"flow": "vitalflow-pipeline"}) is None


def test_terminology_server_serves_metrics():
    from vitalflow.terminology.embedded import EmbeddedServer

    with EmbeddedServer() as url:
        httpx.get(f"{url}/CodeSystem/$validate-code",
                  params={"url": "http://loinc.org", "code": "29463-7"}, timeout=10)
        text = httpx.get(f"{url}/metrics", timeout=10).text
    assert 'vitalflow_http_requests_total{operation="CodeSystem/$validate-code",' \
           'service="terminology",status="2xx"}' in text
    assert "vitalflow_http_request_duration_seconds_bucket" in text


def test_worker_metrics_on_loopback():
    from vitalflow.monitoring.exposition import serve_metrics

    port = free_port()
    server, thread = serve_metrics(port)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert "process_cpu_seconds_total" in text
    assert server.server_address[0] == "127.0.0.1"
    assert serve_metrics(0) is None
