"""Fixtures: the real monitoring stack with a fast test copy of the rules, an alert receiver and
a terminology server it scrapes, all on free loopback ports for the whole session."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.monitoring.stack_helpers import MISSING, RULE_FOR, RULE_RANGE, Background, Stack
from vitalflow.config import load_settings
from vitalflow.services import free_port


@pytest.fixture(scope="session")
def monitoring_stack():
    if MISSING:
        pytest.skip(f"monitoring stack not installed ({', '.join(MISSING)})")
    from vitalflow.monitoring.stack import MonitoringStack

    root = Path(tempfile.mkdtemp(prefix="vitalflow-test-monitoring-"))
    alerts_file = root / "alerts.jsonl"
    receiver_port, terminology_port = free_port(), free_port()
    receiver = Background(["alerts", "listen", "--port", str(receiver_port), "--store",
                           str(alerts_file)], f"http://127.0.0.1:{receiver_port}/")
    terminology_url = f"http://127.0.0.1:{terminology_port}"
    terminology = Background(["terminology", "serve", "--port", str(terminology_port)],
                             f"{terminology_url}/metadata")
    settings = load_settings(
        paths={"home": root / "home"},
        monitoring={"prometheus_port": 0, "alertmanager_port": 0, "pushgateway_port": 0,
                    "scrape_interval": "1s", "evaluation_interval": "1s",
                    "scrape_targets": {"terminology": f"127.0.0.1:{terminology_port}"}},
        alerting={"webhook_url": f"http://127.0.0.1:{receiver_port}/alerts",
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"})
    stack = MonitoringStack(settings, rule_for=RULE_FOR, rule_range=RULE_RANGE)
    try:
        receiver.start()
        terminology.start()
        stack.up()
        yield Stack(stack, alerts_file, terminology, terminology_url)
    finally:
        stack.down()
        terminology.stop()
        receiver.stop()
        shutil.rmtree(root, ignore_errors=True)
