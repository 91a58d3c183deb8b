"""The live profile never shows identifying values and suppresses small cells; the Frictionless
package validates against the data the pipeline wrote."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.conformance.profiles import fresh_database
from vitalflow import pipeline
from vitalflow.cli import app
from vitalflow.config import load_settings
from vitalflow.dictionary.profile import profile_layers
from vitalflow.generate import generate
from vitalflow.storage import open_layers
from vitalflow.tables import OBSERVATION, PATIENT

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def settings(tmp_path_factory, pg_server):
    home = tmp_path_factory.mktemp("profile")
    generate(home / "in", 40, seed=3, defect_rate=0.2)
    with fresh_database(pg_server) as url:
        settings = load_settings(paths={"home": home / "home"}, database={"url": url})
        pipeline.run(settings, home / "in")
        yield settings


@pytest.fixture(scope="module")
def profiled(settings) -> dict:
    layers = open_layers(settings)
    try:
        return {k: profile_layers(layers, k) for k in (1, 10, 25)}
    finally:
        layers.close()


def identifying_values(settings) -> set[str]:
    layers = open_layers(settings)
    try:
        values = set(layers.refined.read(PATIENT, ["patient_key"]).column(0).to_pylist())
        values |= {str(v) for v in layers.refined.read(PATIENT, ["birth_date"]).column(0)
                   .to_pylist() if v}
        values |= set(layers.refined.read(OBSERVATION, ["observation_id"]).column(0).to_pylist())
    finally:
        layers.close()
    return values


def test_identifying_values_are_never_shown(settings, profiled):
    text = json.dumps(profiled[1])
    leaked = [value for value in identifying_values(settings) if f'"{value}"' in text]
    assert leaked == []
    patient_key = profiled[1]["tables"]["refined.patient"]["columns"]["patient_key"]
    assert patient_key["hidden"] and patient_key["distinct"] > 0 and "top" not in patient_key


def test_small_cells_are_suppressed(profiled):
    for k in (10, 25):
        suppressed = 0
        for name, table in profiled[k]["tables"].items():
            for column, stats in table["columns"].items():
                assert all(v["count"] >= k for v in stats.get("top", [])), (name, column)
                suppressed += stats.get("suppressed", 0)
        assert suppressed > 0
        assert all(count >= k for count in profiled[k]["quarantine_reasons"]["shown"].values())
    reasons = profiled[25]["quarantine_reasons"]
    assert reasons["suppressed"] > 0
    assert len(profiled[1]["quarantine_reasons"]["shown"]) == (
        len(reasons["shown"]) + reasons["suppressed"])


def test_profile_reports_rows_nulls_range_and_freshness(profiled):
    observation = profiled[10]["tables"]["refined.observation"]
    assert observation["rows"] > 100 and observation["newest"]
    value = observation["columns"]["value"]
    assert value["null_share"] == 0 and value["min"] < value["max"]
    measures = {v["value"] for v in observation["columns"]["measure"]["top"]}
    assert {"body_height", "body_weight"} <= measures
    assert profiled[10]["tables"]["raw.batch"]["rows"] >= 2


def test_profile_and_export_commands(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("VITALFLOW__DATABASE__URL", settings.database.url)
    monkeypatch.setenv("VITALFLOW__PATHS__HOME", str(settings.paths.home))
    runner = CliRunner()
    shown = runner.invoke(app, ["dictionary", "profile"])
    assert shown.exit_code == 0, shown.output
    assert "refined.observation" in shown.output and "hidden (PII)" in shown.output
    built = runner.invoke(app, ["dictionary", "build", "--out", str(tmp_path / "site"),
                                "--with-profile"])
    assert built.exit_code == 0, built.output
    page = (tmp_path / "site" / "tables" / "refined.observation.html").read_text()
    assert "What the data shows" in page
    exported = runner.invoke(app, ["dictionary", "export", "--format", "frictionless",
                                   "--out", str(tmp_path / "package"), "--data"])
    assert exported.exit_code == 0, exported.output
    from frictionless import validate

    report = validate(str(tmp_path / "package" / "datapackage.json"))
    assert report.valid, report.flatten(["resourceName", "fieldName", "message"])[:5]
