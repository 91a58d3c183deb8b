"""OpenLineage events of real pipeline runs: every job, every state, valid against the spec."""

from __future__ import annotations

import json
import stat

import pytest

from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.lineage.recorder import lineage_folder
from vitalflow.lineage.sink import EventSink, read_events

pytestmark = pytest.mark.postgres


def _settings(settings, **lineage):
    return load_settings(paths={"home": settings.paths.home},
                         database={"url": settings.database.url},
                         lineage={"mode": "openlineage", **lineage})


def test_run_emits_valid_events_for_every_job(settings, generated, openlineage_validator):
    settings = _settings(settings)
    summary = pipeline.run(settings, generated)
    events_file = lineage_folder(settings) / "events.jsonl"
    assert stat.S_IMODE(events_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(events_file.parent.stat().st_mode) == 0o700
    events = read_events(events_file)
    for event in events:
        openlineage_validator(event)
    states = [(e["job"]["name"], e["eventType"]) for e in events]
    jobs = ["pipeline", "ingest", "refine", "derive_patient_bmi", "derive_age_band_summary"]
    assert sorted(set(states)) == sorted((j, s) for j in jobs for s in ("START", "COMPLETE"))
    assert summary["lineage"] | {"seconds": 0} == {"mode": "openlineage", "emitted": 10,
                                                   "sent": 0, "pending": 0, "seconds": 0}

    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    parent_run = complete["pipeline"]["run"]["runId"]
    assert complete["refine"]["run"]["facets"]["parent"]["run"]["runId"] == parent_run
    refine = complete["refine"]
    outputs = {o["name"]: o for o in refine["outputs"]}
    observation = outputs["refined.observation"]
    assert observation["namespace"].startswith("postgresql://127.0.0.1:")
    assert "passfile" not in json.dumps(events) and "@" not in observation["namespace"]
    assert observation["outputFacets"]["outputStatistics"]["rowCount"] == \
        summary["counts"]["Observation"]["refined"]
    value_from = observation["facets"]["columnLineage"]["fields"]["value"]["inputFields"]
    assert value_from[0]["name"].endswith("raw/record") and value_from[0]["field"] == "raw_json"
    outcomes = refine["run"]["facets"]["vitalflow_outcomes"]["resources"]
    assert outcomes == summary["counts"]
    bmi = {o["name"]: o for o in complete["derive_patient_bmi"]["outputs"]}
    lineage = bmi["derived.patient_bmi_latest"]["facets"]["columnLineage"]["fields"]
    assert {f["name"] for f in lineage["height_cm"]["inputFields"]} == {"refined.observation"}
    assert complete["ingest"]["job"]["facets"]["sourceCodeLocation"]["type"] == "git"


def test_failed_stage_emits_fail_with_error_message(settings, openlineage_validator,
                                                    monkeypatch):
    """Also: under a Prefect deployment run, the run's own job names the flow run as parent."""
    flow_run = "0c0ffee0-1234-4abc-8def-0123456789ab"
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", flow_run)
    monkeypatch.setenv("PREFECT__DEPLOYMENT_NAME", "vitalflow-pipeline/daily")
    settings = _settings(settings)
    with pytest.raises(RuntimeError), pipeline.PipelineRun(settings) as run:
        with run.lineage.job("refine"):
            raise RuntimeError("terminology server said no")
    events = read_events(lineage_folder(settings) / "events.jsonl")
    for event in events:
        openlineage_validator(event)
    failed = [e for e in events if e["eventType"] == "FAIL"]
    assert [e["job"]["name"] for e in failed] == ["refine", "pipeline"]
    assert "terminology server said no" in \
        failed[0]["run"]["facets"]["errorMessage"]["message"]
    parent = failed[1]["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == flow_run
    assert (parent["job"]["namespace"], parent["job"]["name"]) == ("prefect",
                                                                   "vitalflow-pipeline/daily")
    assert failed[0]["run"]["facets"]["parent"]["job"]["name"] == "pipeline"


def test_file_mode_emits_nothing(settings, generated):
    settings = load_settings(paths={"home": settings.paths.home},
                             database={"url": settings.database.url}, lineage={"mode": "file"})
    summary = pipeline.run(settings, generated)
    assert summary["lineage"] == {"mode": "file"}
    assert not (lineage_folder(settings) / "events.jsonl").exists()


def test_unreachable_server_keeps_events_pending_then_flush(settings, generated):
    """A closed port: the run succeeds, every event is pending; flush to the same dead URL
    keeps them; nothing is lost."""
    from vitalflow.services import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    settings = _settings(settings, transport="http", url=dead, timeout_seconds=1.0)
    summary = pipeline.run(settings, generated)
    assert summary["lineage"]["pending"] == summary["lineage"]["emitted"] == 10
    sink = EventSink(settings.lineage, lineage_folder(settings), dead)
    assert sink.flush() == (0, 10)
    assert len(read_events(sink.pending_file)) == 10


def test_flush_sends_pending_events_in_order_once_the_server_answers(settings, generated,
                                                                    openlineage_validator):
    """The success path of flush against a loopback HTTP receiver of the OpenLineage API
    (POST /api/v1/lineage): every pending event arrives once, in order, and pending empties.
    Marquez itself cannot be installed here (docs/lineage.md)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from vitalflow.services import free_port

    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/api/v1/lineage":
                received.append(json.loads(body))
            self.send_response(201 if self.path == "/api/v1/lineage" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = _settings(settings, transport="http", url=url, timeout_seconds=1.0)
    summary = pipeline.run(settings, generated)  # nobody listens yet: all pending
    assert summary["lineage"]["pending"] == summary["lineage"]["emitted"] == 10
    server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sink = EventSink(settings.lineage, lineage_folder(settings), url)
        pending = read_events(sink.pending_file)
        assert sink.flush() == (10, 0)
    finally:
        server.shutdown()
        server.server_close()
    assert [e["run"]["runId"] + e["eventType"] for e in received] == \
        [e["run"]["runId"] + e["eventType"] for e in pending]
    for event in received:
        openlineage_validator(event)
    assert not read_events(sink.pending_file)


@pytest.mark.parametrize("url, namespace, name", [
    ("postgresql://vitalflow:s3cret@db.example.org:5432/vf?passfile=/x/pgpass",
     "postgresql://db.example.org:5432/vf", "refined.observation"),
    ("iceberg+postgresql://u@127.0.0.1:5/vf?warehouse=s3://bucket/warehouse",
     "s3://bucket", "warehouse/refined.db/observation"),
    ("clickhouse://default:pw@127.0.0.1:8123/default", "clickhouse://127.0.0.1:8123",
     "stg_refined.observation"),
    ("chdb:///var/vitalflow/clickhouse", "chdb:///var/vitalflow/clickhouse",
     "stg_refined.observation"),
])
def test_dataset_names_are_real_locations_without_secrets(url, namespace, name):
    from vitalflow.lineage.datasets import location
    from vitalflow.tables import OBSERVATION

    prefix = "stg_" if "clickhouse" in url else ""
    assert location(url, OBSERVATION, prefix) == (namespace, name)


def test_export_emits_its_job(settings, generated, openlineage_validator, monkeypatch):
    from typer.testing import CliRunner

    from vitalflow.cli import app

    settings = _settings(settings)
    pipeline.run(settings, generated)
    monkeypatch.setenv("VITALFLOW__PATHS__HOME", str(settings.paths.home))
    monkeypatch.setenv("VITALFLOW__DATABASE__URL", settings.database.url)
    out = settings.paths.home.parent / "bmi.parquet"
    result = CliRunner().invoke(app, ["export", "derived.patient_bmi_latest", "--out", str(out)])
    assert result.exit_code == 0, result.output
    events = [e for e in read_events(lineage_folder(settings) / "events.jsonl")
              if e["job"]["name"] == "export"]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        openlineage_validator(event)
    done = events[1]
    assert "parent" not in done["run"]["facets"]
    assert [i["name"] for i in done["inputs"]] == ["derived.patient_bmi_latest"]
    assert [(o["namespace"], o["name"]) for o in done["outputs"]] == [("file",
                                                                      str(out.resolve()))]
