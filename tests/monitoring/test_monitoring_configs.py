"""The shipped configuration: promtool and amtool accept it, every alert has a unit test, the
rendered copies are valid too, the Grafana JSON matches the panels, automations build."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import timedelta
from uuid import uuid4

import pytest
import yaml

from tests.monitoring.stack_helpers import needs_stack
from vitalflow.config import load_settings
from vitalflow.monitoring.cli import INFRA, checks
from vitalflow.monitoring.panels import GRAFANA_FILE, PANELS, grafana_dashboard
from vitalflow.monitoring.stack import MonitoringStack, render_rules


@needs_stack
@pytest.mark.parametrize("name, command", checks(), ids=[name for name, _ in checks()])
def test_shipped_configs_pass_promtool_and_amtool(name, command):
    result = subprocess.run(command, capture_output=True, text=True, cwd=INFRA, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _alert_names(text: str) -> set[str]:
    return set(re.findall(r"alert(?:: |name: )(\w+)", text))


def test_every_alert_has_a_unit_test_and_a_runbook_line():
    rules = {path.stem: _alert_names(path.read_text()) for path in (INFRA / "rules").glob("*.yml")}
    tested = {path.name.split(".")[0]: _alert_names(path.read_text())
              for path in (INFRA / "tests").glob("*.test.yml")}
    assert rules == {k: tested.get(k, set()) & v for k, v in rules.items()}
    docs = (INFRA.parents[1] / "docs" / "monitoring.md").read_text()
    for alert in set().union(*rules.values()):
        assert f"### {alert}" in docs and "Runbook" in docs.split(f"### {alert}")[1][:1500]


@needs_stack
def test_rendered_configs_are_valid(tmp_path, monkeypatch):
    monkeypatch.setenv("VITALFLOW_SMTP_PASSWORD", "not-a-real-password")
    settings = load_settings(paths={"home": tmp_path}, alerting={
        "webhook_url": "http://127.0.0.1:9999/alerts", "email_to": "ops@example.org",
        "smarthost": "mail.example.org:587"}, monitoring={
        "scrape_targets": {"terminology": "127.0.0.1:8180", "prefect": "127.0.0.1:4201"}})
    stack = MonitoringStack(settings, rule_for="1s", rule_range="10s")
    stack.folder.mkdir(parents=True)
    stack.portfile.write_text(json.dumps({"prometheus": 1, "alertmanager": 2,
                                          "pushgateway": 3}))
    stack.render()
    for path in (stack.folder / "prometheus.yml", stack.folder / "alertmanager.yml"):
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    am = yaml.safe_load((stack.folder / "alertmanager.yml").read_text())
    assert am["receivers"][0]["email_configs"][0]["to"] == "ops@example.org"
    assert subprocess.run(["amtool", "check-config", "alertmanager.yml"], cwd=stack.folder,
                          capture_output=True, check=False).returncode == 0
    result = subprocess.run(["promtool", "check", "config", "prometheus.yml"], cwd=stack.folder,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = (stack.folder / "rules" / "terminology.yml").read_text()
    assert "for: 1s" in rules and "[10s]" in rules and "[1h]" not in rules


def test_render_rules_keeps_production_values_without_overrides(tmp_path):
    render_rules(INFRA / "rules", tmp_path)
    assert (tmp_path / "runs.yml").read_text() == (INFRA / "rules" / "runs.yml").read_text()


def test_grafana_dashboard_is_the_status_page_panels():
    shipped = json.loads(GRAFANA_FILE.read_text())
    assert shipped == grafana_dashboard(), "run `vitalflow monitoring grafana` to refresh it"
    assert [p["title"] for p in shipped["panels"]] == [p.title for p in PANELS]


def test_prefect_automations_build():
    from flows.automations import FLOWS, automations

    block = uuid4()
    built = automations(block, timedelta(hours=26))
    assert [a.name for a in built] == ["vitalflow: flow run failed", "vitalflow: flow run late",
                                       "vitalflow: no completed pipeline run"]
    assert built[0].trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert built[2].trigger.posture == "Proactive"
    assert built[2].trigger.within == timedelta(hours=26)
    assert all(a.actions[0].block_document_id == block for a in built)
    assert built[0].trigger.match_related["prefect.resource.name"] == FLOWS
