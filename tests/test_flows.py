"""The Prefect flows under the test harness: same results as the plain pipeline."""

from __future__ import annotations

import os

import psycopg
import pytest
from prefect.testing.utilities import prefect_test_harness

from tests.fhir_factory import observation, patient, write_ndjson

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_pipeline_flow_refines_and_derives(harness, settings, tmp_path, monkeypatch):
    from flows.pipeline import vitalflow_pipeline

    monkeypatch.setenv("VITALFLOW__DATABASE__URL", settings.database.url)
    monkeypatch.setenv("VITALFLOW__PATHS__HOME", str(settings.paths.root))
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1", birth="1970-01-01")])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        observation("h1", "p1", "height", 70, "2022-05-01T09:00:00Z", unit="[in_i]"),
        observation("w1", "p1", "weight", 176, "2022-05-01T09:00:00Z", unit="[lb_av]"),
        "{not json",
    ])
    result = vitalflow_pipeline(str(tmp_path / "in"))
    assert result["counts"]["Observation"] == {"read": 3, "refined": 2, "quarantined": 1,
                                               "filtered": 0, "duplicates": 0, "pending": 0}
    assert result["patient_bmi_latest"]["written"] == 1
    with psycopg.connect(settings.database.url) as conn:
        height, weight, bmi, category = conn.execute(
            "SELECT height_cm, weight_kg, bmi, weight_category FROM derived.patient_bmi_latest"
        ).fetchone()
        status = conn.execute("SELECT status FROM meta.run").fetchone()[0]
    assert height == pytest.approx(177.8)
    assert weight == pytest.approx(79.8323)
    assert bmi == pytest.approx(25.25, abs=0.01)
    assert category == "overweight"
    assert status == "succeeded"


def test_transient_errors_are_retried_and_bad_data_is_not():
    from prefect.states import Failed

    from flows.pipeline import is_transient
    from storage_backends.base import BackendUnavailable

    def failed(exc):
        return Failed(data=exc)

    assert is_transient(None, None, failed(BackendUnavailable("db down")))
    assert is_transient(None, None, failed(TimeoutError()))
    assert not is_transient(None, None, failed(ValueError("bad data")))
    assert os.environ.get("PREFECT_SERVER_ANALYTICS_ENABLED") == "false"


def test_a_transient_failure_is_retried_under_prefect(harness):
    from prefect import flow, task

    from flows.pipeline import _retrying
    from storage_backends.base import BackendUnavailable

    attempts = []

    @task(**{**_retrying, "retry_delay_seconds": 0})
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise BackendUnavailable("PostgreSQL at 127.0.0.1:1 is not reachable")
        return "done"

    @task(**{**_retrying, "retry_delay_seconds": 0})
    def bad_data() -> None:
        attempts.append(1)
        raise ValueError("refine.observation_codes ['x'] have no measure definition")

    @flow
    def retried() -> str:
        return flaky()

    @flow
    def not_retried() -> None:
        bad_data()

    assert retried() == "done" and len(attempts) == 2
    attempts.clear()
    with pytest.raises(ValueError):
        not_retried()
    assert len(attempts) == 1


def test_owner_flows_emit_their_derive_lineage(harness, settings, tmp_path, monkeypatch):
    """A derived-table owner flow run on its own emits its job's START and COMPLETE events."""
    import json

    from flows.pipeline import derive_age_band_summary_flow, derive_patient_bmi_flow
    from vitalflow.config import load_settings
    from vitalflow.derive.sql import BMI_FLOW, SUMMARY_FLOW
    from vitalflow.lineage.recorder import lineage_folder

    monkeypatch.setenv("VITALFLOW__DATABASE__URL", settings.database.url)
    monkeypatch.setenv("VITALFLOW__PATHS__HOME", str(settings.paths.root))
    events = lineage_folder(load_settings()) / "events.jsonl"
    before = len(events.read_text().splitlines()) if events.exists() else 0
    derive_patient_bmi_flow()
    derive_age_band_summary_flow()
    new = [json.loads(line) for line in events.read_text().splitlines()[before:]]
    jobs = {(e["job"]["name"], e["eventType"]) for e in new}
    assert {(BMI_FLOW, "COMPLETE"), (SUMMARY_FLOW, "COMPLETE")} <= jobs
    outputs = {d["name"] for e in new if e["job"]["name"] == BMI_FLOW for d in e["outputs"]}
    assert any(name.endswith("derived.patient_bmi_latest") for name in outputs)
    # The run's own job is parented by the Prefect flow run that opened it.
    parents = {e["run"]["facets"]["parent"]["job"]["name"] for e in new
               if e["job"]["name"] == "pipeline" and "parent" in e["run"].get("facets", {})}
    assert parents == {BMI_FLOW, SUMMARY_FLOW}
