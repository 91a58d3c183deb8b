"""Under Prefect's test harness: the pipeline flow's events and summary artifact, and the
deployment triggers of prefect.yaml turning events into flow runs with the right parameters."""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness

from tests.deploy.conftest import deploy_all, prefect_env, wait_for
from tests.fhir_factory import observation, patient, write_ndjson
from vitalflow.deploy.graph import FILE_LANDED, TABLE_UPDATED, table_resource
from vitalflow.deploy.report import artifact_key


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=180):
        yield


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _runs_of(deployment_name: str) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with _client() as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[deployment_name])))


@pytest.mark.postgres
def test_a_pipeline_run_publishes_its_summary_and_the_tables_it_changed(
        harness, settings, tmp_path, monkeypatch):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.events.filters import EventFilter, EventNameFilter

    from flows.pipeline import vitalflow_pipeline

    monkeypatch.setenv("VITALFLOW__DATABASE__URL", settings.database.url)
    monkeypatch.setenv("VITALFLOW__PATHS__HOME", str(settings.paths.root))
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1", birth="1970-01-01")])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        observation("h1", "p1", "height", 180, "2022-05-01T09:00:00Z"),
        observation("w1", "p1", "weight", 80, "2022-05-01T09:00:00Z"), "{not json"])
    result = vitalflow_pipeline(str(tmp_path / "in"))
    assert result["counts"]["Observation"]["quarantined"] == 1
    assert result["tables"]["derived.patient_bmi_latest"] == 1

    with _client() as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[artifact_key("postgres")])))
    markdown = artifacts[0].data
    assert f"# vitalflow run {result['run_id']}" in markdown
    assert "| Observation | 3 | 2 | 1 | 0 | 0 | 0 |" in markdown
    assert "`malformed_json`" in markdown and "vitalflow lineage trace" in markdown
    assert "p1" not in markdown  # no source identifier

    def updated_tables():
        with _client() as client:
            events = client.read_events(filter=EventFilter(
                event=EventNameFilter(name=[TABLE_UPDATED])), limit=50).events
        return {e.resource.id for e in events} >= {
            table_resource(t) for t in ("refined.patient", "refined.observation",
                                        "derived.patient_bmi_latest",
                                        "derived.age_band_summary")}

    wait_for("the table-updated events", updated_tables, timeout=60)
    with _client() as client:  # the refine guard every refine of the profile holds
        guard = client.read_global_concurrency_limit_by_name("vitalflow-refine-postgres")
    assert guard.limit == 1 and guard.active_slots == 0


@pytest.mark.slow  # prefect deploy --all: about 20 s
def test_triggers_turn_events_into_runs_of_the_deployments(harness, tmp_path):
    """prefect.yaml deployed as `make serve` does; a landed file starts the arrival
    deployment for that file, refined changes start the BMI owner flow once per debounce
    window, a BMI change starts the summary owner flow."""
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL

    deploy_all(prefect_env(PREFECT_API_URL.value(), VITALFLOW_INPUT=str(tmp_path / "inbox")))
    landed = tmp_path / "inbox" / "Observation.ndjson"
    emit_event(event=FILE_LANDED, resource={"prefect.resource.id": f"vitalflow.file.{landed}",
                                            "vitalflow.path": str(landed)})
    arrival = wait_for("the arrival run", lambda: _runs_of("on-arrival"))
    assert arrival[0].parameters == {"input_path": str(landed), "derive": False}

    for _ in range(3):  # a burst inside the debounce window
        emit_event(event=TABLE_UPDATED, resource={
            "prefect.resource.id": table_resource("refined.observation"),
            "vitalflow.profile": "postgres"})
    bmi = wait_for("the BMI owner flow run", lambda: _runs_of("on-refined-inputs"))
    assert bmi[0].parameters["profile"] == "postgres"
    assert bmi[0].parameters["debounce_seconds"] == 30 and bmi[0].parameters["changed_at"]
    emit_event(event=TABLE_UPDATED, resource={
        "prefect.resource.id": table_resource("derived.patient_bmi_latest"),
        "vitalflow.profile": "postgres"})
    wait_for("the summary owner flow run", lambda: _runs_of("on-bmi-updated"))
    assert len(_runs_of("on-refined-inputs")) == 1  # debounced
    assert _runs_of("nightly") == []  # scheduled runs are not triggered by events


@pytest.mark.postgres
def test_the_operation_flows(harness, settings, tmp_path, monkeypatch):
    """Rebuild holds the refine guard and refines every batch again; a failing command of an
    operation flow fails the flow and its output is the artifact."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.operations import drill_flow, rebuild_flow
    from flows.pipeline import vitalflow_pipeline

    monkeypatch.setenv("VITALFLOW__DATABASE__URL", settings.database.url)
    monkeypatch.setenv("VITALFLOW__PATHS__HOME", str(settings.paths.root))
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1", birth="1970-01-01")])
    vitalflow_pipeline(str(tmp_path / "in"))
    assert rebuild_flow()["counts"]["Patient"]["refined"] == 1
    with pytest.raises(RuntimeError, match="vitalflow drill no-such-drill --quick --json failed"):
        drill_flow("no-such-drill")
    with _client() as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["vitalflow-drill"])), limit=1)
    assert "exit code 2" in artifact.data and "no-such-drill" in artifact.data
