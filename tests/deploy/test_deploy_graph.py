"""The ownership graph, prefect.yaml against it and against Prefect's own models, and
`vitalflow deploy check`."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

from vitalflow.deploy.cli import check_file
from vitalflow.deploy.graph import FLOWS, INPUT_FILES, DeploymentError, Graph, Stage, find_cycle
from vitalflow.tables import DERIVED_TABLES

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = ROOT / "prefect.yaml"


def _spec() -> dict:
    return yaml.safe_load(PREFECT_YAML.read_text())


def _flow_object(flow):
    import importlib

    path, function = flow.entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_stages_come_from_the_table_owners():
    graph = Graph()
    assert graph.stages["ingest"].reads == {INPUT_FILES}
    assert graph.stages["ingest"].writes == {"raw.record", "raw.batch"}
    assert "raw.record" in graph.stages["refine"].reads
    assert graph.stages["derive_patient_bmi"].reads == {"refined.patient", "refined.observation"}
    assert graph.stages["derive_age_band_summary"].reads == {"derived.patient_bmi_latest"}
    assert {t.qualified_name: [t.owner] for t in DERIVED_TABLES}.items() <= \
        graph.writers().items()


def test_the_graph_flows_are_the_prefect_flows():
    """Each entrypoint of the graph names a flow object with the graph's flow name."""
    for flow in FLOWS:
        assert _flow_object(flow).name == flow.name


def test_prefect_yaml_passes_prefects_models():
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.events import DeploymentTriggerTypes

    model = PrefectYamlModel.model_validate(_spec())
    assert {d.work_pool.name for d in model.deployments} == {"vitalflow-process"}
    triggers = TypeAdapter(DeploymentTriggerTypes)
    for deployment in model.deployments:
        assert deployment.description and deployment.tags and deployment.concurrency_limit
        for trigger in deployment.triggers or []:
            triggers.validate_python(trigger)


def test_prefect_yaml_names_every_operation_and_each_derived_owner():
    spec = _spec()
    entrypoints = {d["entrypoint"] for d in spec["deployments"]}
    assert entrypoints == {f.entrypoint for f in FLOWS}
    nightly = next(d for d in spec["deployments"] if d["name"] == "nightly")
    assert nightly["schedules"][0]["cron"] == "0 2 * * *"


def test_parameters_have_types_and_descriptions():
    """Prefect builds each deployment's parameter schema from the flow's signature and its
    docstring's Args section."""
    from prefect.utilities.callables import parameter_schema

    for flow in FLOWS:
        fn = _flow_object(flow).fn
        schema = parameter_schema(fn)
        for name, prop in schema.properties.items():
            assert prop.get("description"), f"{flow.name}: {name} has no description"
            assert "type" in prop or "anyOf" in prop, f"{flow.name}: {name} has no type"


def test_prefect_yaml_has_no_cycle_and_one_writer_per_table():
    _, _, edges = check_file(PREFECT_YAML)
    assert edges["vitalflow-pipeline/on-arrival"] == {
        "derive_patient_bmi/on-refined-inputs", "derive_age_band_summary/on-bmi-updated"}
    assert edges["derive_patient_bmi/on-refined-inputs"] == {
        "derive_age_band_summary/on-bmi-updated"}
    assert edges["derive_age_band_summary/on-bmi-updated"] == set()


def test_a_cyclic_trigger_is_refused_with_the_cycle_named(tmp_path):
    spec = copy.deepcopy(_spec())
    arrival = next(d for d in spec["deployments"] if d["name"] == "on-arrival")
    arrival["triggers"].append({"type": "event", "expect": ["vitalflow.table.updated"],
                                "match": {"prefect.resource.id":
                                          "vitalflow.table.derived.age_band_summary"}})
    with pytest.raises(DeploymentError) as refused:
        check_file(_write(tmp_path, spec))
    assert str(refused.value) == (
        "trigger cycle: derive_age_band_summary/on-bmi-updated -> vitalflow-pipeline/on-arrival"
        " -> derive_age_band_summary/on-bmi-updated")


def test_a_cycle_through_flow_run_events_is_refused(tmp_path):
    spec = copy.deepcopy(_spec())
    bmi = next(d for d in spec["deployments"] if d["name"] == "on-refined-inputs")
    bmi["triggers"].append({"type": "event", "expect": ["prefect.flow-run.Completed"],
                            "match": {"prefect.resource.id": "prefect.flow-run.*"},
                            "match_related": {"prefect.resource.name":
                                              "derive_age_band_summary"}})
    with pytest.raises(DeploymentError, match="trigger cycle: derive_age_band_summary/"
                       "on-bmi-updated -> derive_patient_bmi/on-refined-inputs -> "
                       "derive_age_band_summary/on-bmi-updated"):
        check_file(_write(tmp_path, spec))


def test_two_writers_of_a_table_are_refused():
    graph = Graph()
    graph.stages["bmi_v2"] = Stage("bmi_v2", frozenset({"refined.observation"}),
                                   frozenset({"derived.patient_bmi_latest"}))
    with pytest.raises(DeploymentError, match="table derived.patient_bmi_latest has 2 writers: "
                       "bmi_v2, derive_patient_bmi"):
        check_file(PREFECT_YAML, graph)


def test_an_unknown_flow_is_refused(tmp_path):
    spec = copy.deepcopy(_spec())
    spec["deployments"].append({"name": "extra", "entrypoint": "flows/extra.py:extra"})
    with pytest.raises(DeploymentError, match="'flows/extra.py:extra' is not a flow of the "
                       "ownership graph"):
        check_file(_write(tmp_path, spec))


def test_find_cycle():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["b"]}) == ["b", "c", "b"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_deploy_check_command(tmp_path):
    def check(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vitalflow.cli", "deploy", "check",
                               "--file", str(path)], capture_output=True, text=True,
                              cwd=ROOT, timeout=120, check=False)

    ok = check(PREFECT_YAML)
    assert ok.returncode == 0, ok.stderr
    assert "8 deployments, no cycle" in ok.stdout
    spec = copy.deepcopy(_spec())
    summary = next(d for d in spec["deployments"] if d["name"] == "on-bmi-updated")
    summary["triggers"][0]["match"]["prefect.resource.id"] = "vitalflow.table.derived.*"
    refused = check(_write(tmp_path, spec))
    assert refused.returncode == 1
    assert ("refused: trigger cycle: derive_age_band_summary/on-bmi-updated -> "
            "derive_age_band_summary/on-bmi-updated") in " ".join(refused.stderr.split())
