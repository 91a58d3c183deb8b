"""The dashboard panels as data: drawn by the status page and exported as Grafana JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

GRAFANA_FILE = Path(__file__).resolve().parents[2] / "infra" / "monitoring" / "grafana" / \
    "vitalflow.json"


@dataclass(frozen=True)
class Panel:
    title: str
    query: str  # PromQL giving one value per series
    legend: str  # the label(s) naming each series, e.g. "{{resource}}"
    unit: str = "short"  # Grafana unit: short, s, bytes, percentunit
    section: str = ""


PANELS = (
    Panel("Last run per profile (1 = succeeded)", 'vitalflow_run_success{job="vitalflow"}',
          "{{profile}}", section="Runs"),
    Panel("Run duration per task", 'vitalflow_run_duration_seconds{job="vitalflow"}',
          "{{profile}} {{task}}", "s", "Throughput"),
    Panel("Records read per resource (last run)",
          'sum by (resource) (vitalflow_records{job="vitalflow", outcome="read"})',
          "{{resource}}", section="Throughput"),
    Panel("Records per outcome (last run)",
          'sum by (outcome) (vitalflow_records{job="vitalflow", outcome!="read"})',
          "{{outcome}}", section="Outcomes"),
    Panel("Quarantine reasons (last run)",
          'sum by (reason) (vitalflow_quarantine_records{job="vitalflow"})', "{{reason}}",
          section="Outcomes"),
    Panel("Age of each derived table",
          'time() - vitalflow_derived_last_success_timestamp_seconds{job="vitalflow"}',
          "{{profile}} {{table}}", "s", "Freshness"),
    Panel("Terminology lookups (last run)",
          'sum by (kind) (vitalflow_terminology_calls{job="vitalflow"})', "{{kind}}",
          section="Terminology"),
    Panel("Terminology cache hit ratio", 'vitalflow_terminology_cache_hit_ratio{job="vitalflow"}',
          "{{profile}}", "percentunit", "Terminology"),
    Panel("Parked observations (all runs)",
          'vitalflow_terminology_parked_observations{job="vitalflow"}', "{{profile}}",
          section="Terminology"),
    Panel("Terminology circuit open (1 = open)",
          'vitalflow_terminology_circuit_open{job="vitalflow"}', "{{profile}}",
          section="Terminology"),
    Panel("Storage per layer", 'vitalflow_storage_bytes{job="vitalflow"}',
          "{{profile}} {{layer}}", "bytes", "Storage"),
    Panel("Services up (1 = scraped)", "up", "{{job}} {{service}}", section="Services"),
)


def grafana_dashboard() -> dict:
    """The panels as a Grafana dashboard (bar gauges over the Prometheus data source)."""
    panels = []
    for index, panel in enumerate(PANELS):
        panels.append({
            "id": index + 1, "type": "bargauge", "title": panel.title,
            "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "targets": [{"refId": "A", "expr": panel.query, "legendFormat": panel.legend,
                         "instant": True}],
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "options": {"orientation": "horizontal", "displayMode": "basic",
                        "reduceOptions": {"calcs": ["lastNotNull"], "values": False}}})
    return {
        "title": "vitalflow", "uid": "vitalflow", "schemaVersion": 39, "version": 1,
        "tags": ["vitalflow"], "time": {"from": "now-7d", "to": "now"}, "refresh": "1m",
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus"}]},
        "panels": panels}


def write_grafana_dashboard(path: Path = GRAFANA_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(grafana_dashboard(), indent=2) + "\n")
    return path
