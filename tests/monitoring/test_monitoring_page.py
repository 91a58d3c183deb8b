"""The status page in headless Chromium, and the stack through `vitalflow services`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.monitoring.stack_helpers import Background, needs_stack
from vitalflow import pipeline
from vitalflow.config import PROJECT_ROOT
from vitalflow.generate import generate
from vitalflow.services import free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / ".vitalflow" / "test-artifacts"


@pytest.mark.postgres
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed "
                    "(infra/monitoring/install.sh installs it as root)")
def test_status_page_in_chromium(monitoring_stack, settings, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    s = monitoring_stack.settings(settings)
    generate(tmp_path / "in", 40, seed=11, defect_rate=0.1)
    pipeline.run(s, tmp_path / "in")
    monitoring_stack.wait_query(f'vitalflow_quarantine_records{{instance="{s.monitoring.instance}"}}')
    port = free_port()
    page_server = Background(["monitoring", "status-page", "--port", str(port), "--prometheus",
                              monitoring_stack.prometheus], f"http://127.0.0.1:{port}/api/panels")
    page_server.start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
            text = page.inner_text("body")
            page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
            browser.close()
    finally:
        page_server.stop()
        monitoring_stack.forget(s)
    for section in ("Throughput", "Outcomes", "Freshness", "Terminology", "Storage", "Alerts"):
        assert section in text
    assert "Quarantine reasons (last run)" in text and "Observation" in text
    assert "no data yet" not in text.split("Storage per layer")[1].split("Services")[0]
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000


@needs_stack
def test_services_up_status_down_monitoring(tmp_path):
    env = {**os.environ, "VITALFLOW__PATHS__HOME": str(tmp_path),
           **{f"VITALFLOW__MONITORING__{name.upper()}_PORT": "0"
              for name in ("prometheus", "alertmanager", "pushgateway")}}

    def vitalflow(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "vitalflow.cli", *args], env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    try:
        assert "http://127.0.0.1:" in vitalflow("services", "up", "monitoring")
        status = vitalflow("services", "status")
        assert "monitoring prometheus" in status and status.count("running") >= 3
        state = tmp_path / "monitoring"
        assert state.stat().st_mode & 0o077 == 0
        assert all(p.stat().st_mode & 0o077 == 0 for p in state.iterdir())
    finally:
        stopped = vitalflow("services", "down", "monitoring")
    assert "stopped" in stopped
    assert "running" not in vitalflow("services", "status")
