"""Helpers for the monitoring tests: background CLI processes and the session's stack."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

MISSING = [b for b in ("prometheus", "promtool", "prometheus-alertmanager", "amtool",
                       "prometheus-pushgateway") if not shutil.which(b)]
needs_stack = pytest.mark.skipif(bool(MISSING), reason=f"monitoring stack not installed "
                                 f"({', '.join(MISSING)}): run make install as root")
# Alerts in the test copy of the rules hold for this long before firing; windows are short.
RULE_FOR = "2s"
RULE_RANGE = "60s"  # only the parked-observations rule has a window: long enough to see 0 then N
# How long an alert may take beyond `for`: scrape, evaluation, Alertmanager's group_wait and a
# loaded 2-core machine.
MARGIN = 45


class Background:
    """A `python -m vitalflow.cli ...` process on a port, stopped by the fixture."""

    def __init__(self, args: list[str], ready_url: str):
        self.args, self.ready_url = args, ready_url
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "vitalflow.cli", *self.args],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.args} exited"
            try:
                httpx.get(self.ready_url, timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"{self.args} did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class Stack:
    """What a test needs of the session's stack."""

    def __init__(self, stack, alerts_file: Path, terminology: Background, terminology_url: str):
        self.stack, self.alerts_file = stack, alerts_file
        self.terminology, self.terminology_url = terminology, terminology_url
        self.prometheus = stack.url("prometheus")
        self.pushgateway = stack.url("pushgateway")

    def query(self, promql: str) -> list[dict]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": promql},
                             timeout=10)
        response.raise_for_status()
        return response.json()["data"]["result"]

    def wait_query(self, promql: str, timeout: float = MARGIN) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result := self.query(promql):
                return result
            time.sleep(0.5)
        raise AssertionError(f"no result for {promql} within {timeout} s")

    def notifications(self) -> list[dict]:
        if not self.alerts_file.exists():
            return []
        return [json.loads(line) for line in self.alerts_file.read_text().splitlines()]

    def wait_alert(self, alertname: str, status: str, timeout: float = MARGIN,
                   **labels: str) -> dict:
        """The first alert the receiver got with this name, status and labels."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for notification in self.notifications():
                for alert in notification["alerts"]:
                    have = alert["labels"]
                    if have.get("alertname") == alertname and alert["status"] == status and \
                            all(have.get(k) == v for k, v in labels.items()):
                        return alert
            time.sleep(0.5)
        raise AssertionError(f"{alertname} {status} {labels} not received within {timeout} s; "
                             f"received: {[a['labels'] for n in self.notifications() for a in n['alerts']]}")

    def settings(self, base, **monitoring):
        """Test settings pushing to this stack under a label of their own."""
        instance = f"test-{uuid.uuid4().hex[:8]}"
        return base.model_copy(update={"monitoring": base.monitoring.model_copy(update={
            "pushgateway_url": self.pushgateway, "instance": instance, **monitoring})})

    def forget(self, settings, profile: str = "postgres") -> None:
        """Delete a test's group from the Pushgateway, so its alerts resolve."""
        httpx.delete(f"{self.pushgateway}/metrics/job/vitalflow/profile/{profile}/instance/"
                     f"{settings.monitoring.instance}", timeout=10)
