"""Trace a derived value to the file and line it came from; impact of one input file."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vitalflow import pipeline
from vitalflow.cli import app
from vitalflow.config import load_settings
from vitalflow.storage import open_layers
from vitalflow.tables import PATIENT_BMI_LATEST

pytestmark = pytest.mark.postgres


@pytest.fixture
def file_mode(settings):
    """Option 1: no events at all; trace works from the keys the rows carry."""
    return load_settings(paths={"home": settings.paths.home},
                         database={"url": settings.database.url}, lineage={"mode": "file"})


def test_trace_names_the_file_and_line_of_each_observation(file_mode, generated, monkeypatch):
    pipeline.run(file_mode, generated)
    layers = open_layers(file_mode)
    try:
        rows = layers.derived.read(PATIENT_BMI_LATEST).to_pylist()
    finally:
        layers.close()
    row = next(r for r in rows if r["height_observation_id"])
    monkeypatch.setenv("VITALFLOW__PATHS__HOME", str(file_mode.paths.home))
    monkeypatch.setenv("VITALFLOW__DATABASE__URL", file_mode.database.url)
    monkeypatch.setenv("VITALFLOW__LINEAGE__MODE", "file")
    result = CliRunner().invoke(app, ["lineage", "trace", "derived.patient_bmi_latest",
                                      "--key", row["patient_key"], "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["row"]["bmi"] == row["bmi"]
    used = {o["observation_id"]: o for o in found["observations"]}
    assert set(used) == {row["height_observation_id"], row["weight_observation_id"]}
    for observation_id, step in used.items():
        raw = step["raw"]
        assert raw["refine_run_id"] and raw["ingest_code_version"]
        # The named file's named line is the very resource the value came from.
        lines = open(raw["source_path"], encoding="utf-8").read().splitlines()
        assert json.loads(lines[raw["line"] - 1])["id"] == observation_id

    human = CliRunner().invoke(app, ["lineage", "trace", "derived.patient_bmi_latest",
                                     "--key", row["patient_key"]])
    assert human.exit_code == 0 and "Observation.ndjson" in human.output

    impact = CliRunner().invoke(app, ["lineage", "impact", raw["source_path"], "--json"])
    assert impact.exit_code == 0, impact.output
    touched = json.loads(impact.output)
    assert touched["batch_id"] == raw["batch_id"]
    assert set(used) <= set(touched["observation_ids"])
    assert row["patient_key"] in touched["derived_keys"]
    assert touched["refined"]["refined.patient"] == 0  # the Observation file holds no patients

    missing = CliRunner().invoke(app, ["lineage", "trace", "derived.patient_bmi_latest",
                                       "--key", "p_nobody"])
    assert missing.exit_code == 1 and "no row" in missing.output
