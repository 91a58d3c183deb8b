"""[monitoring] and [alerting] settings: where metrics go, thresholds the alert rules compare to."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MonitoringSettings(BaseModel):
    """Run metrics and the local Prometheus / Alertmanager / Pushgateway (docs/monitoring.md)."""

    enabled: bool = True
    # Empty: the Pushgateway of `vitalflow services up monitoring` when it runs, else none.
    pushgateway_url: str = ""
    push_timeout_seconds: float = Field(3.0, gt=0)
    # The `instance` label of pushed run metrics (empty: the host name), so several
    # environments can share one Pushgateway.
    instance: str = ""
    # Ports of the local stack; a taken port (or 0) is replaced by a free one (remembered).
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    pushgateway_port: int = 9091
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    # /metrics of the Prefect worker (`make serve`) on 127.0.0.1; 0: none.
    worker_metrics_port: int = 9188
    # Long-running processes scraped by the local Prometheus: name -> host:port (their /metrics).
    scrape_targets: dict[str, str] = {}
    # Thresholds pushed with each run as metrics, so the shipped rules stay one file.
    expected_run_interval_hours: float = Field(26.0, gt=0)
    freshness_target_hours: dict[str, float] = {"derived.patient_bmi_latest": 26.0,
                                                "derived.age_band_summary": 26.0}
    quarantine_share_max: float = Field(0.2, ge=0, le=1)
    quarantine_jump_factor: float = Field(2.0, ge=1)
    storage_free_ratio_min: float = Field(0.1, ge=0, le=1)
    replica_lag_max_seconds: float = Field(300.0, ge=0)


class AlertingSettings(BaseModel):
    """Where Alertmanager sends alerts: a webhook and, optionally, e-mail."""

    # Default: the receiver of `vitalflow alerts listen` on its default port.
    webhook_url: str = "http://127.0.0.1:9099/alerts"
    email_to: str = ""
    email_from: str = "vitalflow@localhost"
    smarthost: str = ""  # host:port of the SMTP server; password from VITALFLOW_SMTP_PASSWORD
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    resolve_timeout: str = "5m"
