"""A run summary as Prometheus metrics, pushed to a Pushgateway; a failed push never fails a run."""

from __future__ import annotations

import functools
import json
import logging
import socket
import time
from pathlib import Path

from storage_backends.base import redact
from vitalflow.monitoring.probes import database_probe, filesystem_probe
from vitalflow.monitoring.processes import write_private

log = logging.getLogger(__name__)
FLOW = "vitalflow-pipeline"
JOB = "vitalflow"
OUTCOMES = ("read", "refined", "quarantined", "filtered", "duplicates", "pending")
# The state of the local stack (ports, configs, data) lives here under paths.home.
STATE_DIR = "monitoring"


def _registry():
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    return registry, gauge


def _dropped_file(settings) -> Path:
    return settings.paths.root / STATE_DIR / "dropped_pushes.json"


def dropped_pushes(settings) -> int:
    """How many pushes were dropped because the Pushgateway could not be reached (persisted)."""
    path = _dropped_file(settings)
    try:
        return int(json.loads(path.read_text())["count"])
    except (OSError, ValueError, KeyError):
        return 0


@functools.cache
def _dropped_counter():
    """This process's count of dropped pushes (seen on /metrics of long-running processes)."""
    from prometheus_client import Counter

    return Counter("vitalflow_monitoring_dropped_pushes",
                   "Run metric pushes dropped because the Pushgateway was down")


def _count_dropped(settings) -> None:
    path = _dropped_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, json.dumps({"count": dropped_pushes(settings) + 1}))
    _dropped_counter().inc()


def pushgateway_url(settings) -> str | None:
    """The configured Pushgateway, else the local stack's when it was started, else None."""
    if settings.monitoring.pushgateway_url:
        return settings.monitoring.pushgateway_url
    ports = settings.paths.root / STATE_DIR / "ports.json"
    if ports.exists():
        return f"http://127.0.0.1:{json.loads(ports.read_text())['pushgateway']}"
    return None


def build_registry(summary: dict, settings):
    """The metrics of one run. A summary with outcome 'failed' carries only duration and time."""
    registry, gauge = _registry()
    now = time.time()
    failed = summary.get("outcome") == "failed"
    gauge("vitalflow_run_success", "1 when the last run succeeded, 0 when it failed",
          ("flow",)).labels(FLOW).set(0 if failed else 1)
    gauge("vitalflow_run_finished_timestamp_seconds", "When the last run ended",
          ("flow",)).labels(FLOW).set(now)
    seconds = dict(summary.get("seconds") or {})
    seconds.setdefault("total", sum(seconds.values()))
    duration = gauge("vitalflow_run_duration_seconds", "Seconds the last run spent per task "
                     "(total: the whole run)", ("flow", "task"))
    for task, value in seconds.items():
        duration.labels(FLOW, task).set(value)
    if failed:
        gauge("vitalflow_run_last_failure_timestamp_seconds", "When a run last failed, with "
              "the exception class", ("flow", "error")).labels(
            FLOW, summary.get("error", "unknown")).set(now)
        return registry
    gauge("vitalflow_run_last_success_timestamp_seconds", "When a run last succeeded",
          ("flow",)).labels(FLOW).set(now)
    _record_metrics(summary, gauge)
    _table_metrics(summary, settings, gauge, now)
    _terminology_metrics(summary.get("terminology") or {}, summary["counts"], gauge)
    _threshold_metrics(settings, gauge)
    _storage_metrics(summary, settings, gauge)
    gauge("vitalflow_monitoring_dropped_pushes_total", "Run metric pushes dropped so far "
          "because the Pushgateway could not be reached").set(dropped_pushes(settings))
    return registry


def _record_metrics(summary: dict, gauge) -> None:
    records = gauge("vitalflow_records", "Records of the last run per resource type and "
                    "outcome", ("resource", "outcome"))
    for resource, counts in summary["counts"].items():
        for outcome in OUTCOMES:
            records.labels(resource, outcome).set(counts.get(outcome, 0))
    for name, key, doc in (("vitalflow_quarantine_records", "quarantine_reasons", "quarantined"),
                           ("vitalflow_filtered_records", "filter_reasons", "filtered")):
        reasons = gauge(name, f"Records {doc} by the last run per reason", ("reason",))
        for reason, count in (summary.get(key) or {}).items():
            reasons.labels(reason).set(count)
    read = sum(c.get("read", 0) for c in summary["counts"].values())
    quarantined = sum(c.get("quarantined", 0) for c in summary["counts"].values())
    gauge("vitalflow_quarantine_share", "Share of the last run's records that were "
          "quarantined").set(quarantined / read if read else 0)
    ingest = summary.get("ingest") or {}
    files = gauge("vitalflow_ingest_files", "Input files of the last run by state", ("state",))
    files.labels("new").set(ingest.get("new_batches", 0))
    files.labels("already_ingested").set(ingest.get("already_ingested", 0))
    files.labels("failed").set(len(ingest.get("errors", [])))


def _table_metrics(summary: dict, settings, gauge, now: float) -> None:
    rows = gauge("vitalflow_table_rows", "Rows in each table after the last run", ("table",))
    for table, count in summary["tables"].items():
        rows.labels(table).set(count)
    written = gauge("vitalflow_rows_written", "Rows the last run wrote (or deleted) per table",
                    ("table", "change"))
    counts = summary["counts"]
    for resource, table in (("Patient", "refined.patient"), ("Observation",
                                                              "refined.observation")):
        written.labels(table, "written").set(counts.get(resource, {}).get("refined", 0))
    written.labels("refined.quarantine", "written").set(
        sum(c.get("quarantined", 0) for c in counts.values()))
    derive = summary.get("derive") or {}
    for table, prefix in (("derived.patient_bmi_latest", "bmi_rows"),
                          ("derived.age_band_summary", "summary_rows")):
        for change in ("written", "deleted"):
            written.labels(table, change).set(derive.get(f"{prefix}_{change}", 0))
    fresh = gauge("vitalflow_derived_last_success_timestamp_seconds", "When each derived table "
                  "was last brought up to date by a successful run", ("table",))
    for table in summary["tables"]:
        if table.startswith("derived."):
            fresh.labels(table).set(now)


def _terminology_metrics(terminology: dict, counts: dict, gauge) -> None:
    calls = terminology.get("calls") or {}
    by_kind = gauge("vitalflow_terminology_calls", "Terminology lookups of the last run by how "
                    "they were answered (requests: HTTP calls to the server)", ("kind",))
    for kind, value in calls.items():
        by_kind.labels(kind).set(value)
    hits = calls.get("memory_hits", 0) + calls.get("database_hits", 0)
    asked = hits + calls.get("requests", 0) - calls.get("retries", 0)
    gauge("vitalflow_terminology_cache_hit_ratio", "Share of the last run's terminology "
          "lookups answered from the cache").set(hits / asked if asked else 0)
    outcomes = gauge("vitalflow_terminology_records", "Records of the last run by terminology "
                     "outcome", ("outcome",))
    for outcome, value in (terminology.get("records") or {}).items():
        outcomes.labels(outcome).set(value)
    parked = sum(c.get("pending", 0) for c in counts.values())
    # The client's circuit breaker as the run ended (half-open: unreachable at the last call);
    # a run with too few calls to trip it that still had to park observations after failed
    # calls ended with the server unreachable too.
    is_open = (terminology.get("breaker", "closed") != "closed"
               or bool(calls.get("failures") and parked))
    gauge("vitalflow_terminology_circuit_open", "1 when the last run ended with the "
          "terminology server unreachable (circuit breaker open)").set(int(is_open))


def _threshold_metrics(settings, gauge) -> None:
    m = settings.monitoring
    target = gauge("vitalflow_freshness_target_seconds", "How old each derived table may get",
                   ("table",))
    for table, hours in m.freshness_target_hours.items():
        target.labels(table).set(hours * 3600)
    threshold = gauge("vitalflow_threshold", "Alert thresholds from [monitoring]", ("name",))
    for name, value in (("expected_run_interval_seconds", m.expected_run_interval_hours * 3600),
                        ("quarantine_share_max", m.quarantine_share_max),
                        ("quarantine_jump_factor", m.quarantine_jump_factor),
                        ("storage_free_ratio_min", m.storage_free_ratio_min),
                        ("replica_lag_max_seconds", m.replica_lag_max_seconds)):
        threshold.labels(name).set(value)


def _storage_metrics(summary: dict, settings, gauge) -> None:
    layer_bytes = gauge("vitalflow_storage_bytes", "Bytes each layer takes in its engine "
                        "(Backend.storage_bytes, every profile)", ("layer",))
    for layer, value in summary.get("storage_bytes", {}).items():
        layer_bytes.labels(layer).set(value)
    free, size = filesystem_probe(settings.paths.root)
    gauge("vitalflow_storage_filesystem_free_bytes", "Free bytes on the file system of "
          "paths.home").set(free)
    gauge("vitalflow_storage_filesystem_size_bytes", "Size of the file system of "
          "paths.home").set(size)
    db = database_probe(summary.get("database_url"), summary.get("run_id"))
    if db is None:
        return
    gauge("vitalflow_database_connections", "Connections to the control database").set(
        db["connections"])
    gauge("vitalflow_database_max_connections", "The control database's max_connections").set(
        db["max_connections"])
    lag = gauge("vitalflow_database_replication_lag_seconds", "Replay lag of each replica of "
                "the control database", ("replica",))
    for replica, seconds in db["replication_lag"].items():
        lag.labels(replica).set(seconds)
    gauge("vitalflow_terminology_parked_observations", "Observations parked until the "
          "terminology server can check them (all runs)").set(db["parked"])
    if db["quarantine_share_baseline"] is not None:  # absent before the first comparison
        gauge("vitalflow_quarantine_share_baseline", "Median quarantine share of the previous "
              "successful runs").set(db["quarantine_share_baseline"])


def grouping_key(summary: dict, settings) -> dict[str, str]:
    """The Pushgateway group of a run: its profile and the configured instance."""
    return {"profile": (summary.get("storage") or {}).get("profile", ""),
            "instance": settings.monitoring.instance or socket.gethostname()}


def push_run_metrics(summary: dict, settings) -> bool:
    """Push the run's metrics; on any failure log a warning, count the drop and return False."""
    if not settings.monitoring.enabled:
        return False
    url = pushgateway_url(settings)
    if url is None:
        log.info("monitoring: no Pushgateway configured or running; run metrics not pushed")
        return False
    try:
        from prometheus_client import push_to_gateway, pushadd_to_gateway

        registry = build_registry(summary, settings)
        # A success replaces the group; a failure only updates outcome, duration and time, so
        # the last success and the freshness of each table survive failed runs.
        push = pushadd_to_gateway if summary.get("outcome") == "failed" else push_to_gateway
        push(url, job=JOB, registry=registry,
             grouping_key=grouping_key(summary, settings),
             timeout=settings.monitoring.push_timeout_seconds)
    except Exception as exc:  # noqa: BLE001 - monitoring down must never fail a run
        log.warning("monitoring: run metrics dropped, Pushgateway %s not reachable (%s)",
                    redact(url), type(exc).__name__)
        try:
            _count_dropped(settings)
        except OSError:
            pass
        return False
    return True
