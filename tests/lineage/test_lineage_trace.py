"""Trace a derived value to the file and line it came from; impact of one input file."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vitalflow import pipeline
from vitalflow.cli import app
from vitalflow.config import load_settings
from vitalflow.generate import generate
from vitalflow.lineage.recorder import lineage_folder
from vitalflow.lineage.sink import read_events
from vitalflow.lineage.trace import trace
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
    groups = touched["summary_groups"]
    assert touched["derived"]["derived.age_band_summary"] == len(groups) > 0
    assert {"age_band", "sex", "weight_category"} == set(groups[0])

    missing = CliRunner().invoke(app, ["lineage", "trace", "derived.patient_bmi_latest",
                                       "--key", "p_nobody"])
    assert missing.exit_code == 1 and "no row" in missing.output


def test_hybrid_keeps_who_wrote_what_and_trace_shows_it(settings, generated):
    hybrid = load_settings(paths={"home": settings.paths.home},
                           database={"url": settings.database.url}, lineage={"mode": "hybrid"})
    summary = pipeline.run(hybrid, generated)
    assert summary["lineage"]["emitted"] == 10 and "not_emitted" not in summary["lineage"]
    layers = open_layers(hybrid)
    try:
        with layers.control.connect() as conn:
            rows = conn.execute("SELECT job, table_name, batch_id, rows, code_version, "
                                "pseudonym_key_id FROM meta.lineage WHERE run_id = %s",
                                (summary["run_id"],)).fetchall()
        read = {r[2]: r[3] for r in rows if r[0] == "refine" and r[1] == "raw.record"}
        assert len(read) == 2 and sum(read.values()) == summary["ingest"]["records"]
        written = {(r[0], r[1]): r[3] for r in rows if r[2] == ""}
        assert written[("refine", "refined.observation")] == \
            summary["counts"]["Observation"]["refined"]
        assert ("derive_patient_bmi", "derived.patient_bmi_latest") in written
        assert written[("ingest", "raw.record")] == summary["ingest"]["records"]
        assert all(r[4] and r[5] for r in rows)  # code version and key id on every row
        key = layers.derived.read(PATIENT_BMI_LATEST, ["patient_key"]).column(0)[0].as_py()
        step = trace(layers, "derived.patient_bmi_latest", key)["observations"][0]["raw"]
        assert [h["job"] for h in step["history"]] == ["refine"]
        assert step["history"][0]["run_id"] == summary["run_id"]
    finally:
        layers.close()


def _meta_lineage(layers) -> set[tuple]:
    with layers.control.connect() as conn:
        if conn.execute("SELECT to_regclass('meta.lineage')").fetchone()[0] is None:
            return set()
        return set(conn.execute("SELECT run_id, job, table_name, batch_id, rows, code_version, "
                                "terminology::text, pseudonym_key_id, written_at "
                                "FROM meta.lineage").fetchall())


def test_migrate_between_options_loses_nothing(settings, generated, monkeypatch):
    """hybrid -> file archives meta.lineage and drops it; file -> hybrid restores every row and
    backfills the batches refined meanwhile in file mode."""
    monkeypatch.setenv("VITALFLOW__PATHS__HOME", str(settings.paths.home))
    monkeypatch.setenv("VITALFLOW__DATABASE__URL", settings.database.url)
    hybrid = load_settings(lineage={"mode": "hybrid"})
    pipeline.run(hybrid, generated)
    layers = open_layers(hybrid)
    try:
        before = _meta_lineage(layers)
        assert before
        result = CliRunner().invoke(app, ["lineage", "migrate", "--to", "file"])
        assert result.exit_code == 0, result.output
        assert f"archived: {len(before)}" in result.output
        assert _meta_lineage(layers) == set()
        # back in file mode, a later input is refined with no lineage table at all
        later = settings.paths.home.parent / "later"
        generate(later, 5, seed=99)
        pipeline.run(load_settings(lineage={"mode": "file"}), later)
        result = CliRunner().invoke(app, ["lineage", "migrate", "--to", "hybrid"])
        assert result.exit_code == 0, result.output
        after = _meta_lineage(layers)
        assert before <= after
        new = {row[3] for row in after - before}
        assert len(new) == 2 and "backfilled: 2" in result.output  # the later input's batches
    finally:
        layers.close()


@pytest.mark.parametrize("profile", ["clickhouse", "lakehouse"])
def test_trace_and_events_on_other_profiles(profile, settings, generated, openlineage_validator,
                                            request):
    """ClickHouse (chdb, in-process) and Iceberg on the session's SeaweedFS: same trace, and
    datasets named by where they live."""
    from tests.conformance.profiles import profile_settings

    if profile == "clickhouse":
        pytest.importorskip("chdb")
    placed = profile_settings(profile, settings.paths.home, settings.database.url, request)
    assert placed.lineage.mode == "openlineage"
    pipeline.run(placed, generated)
    layers = open_layers(placed)
    try:
        row = next(r for r in layers.derived.read(PATIENT_BMI_LATEST).to_pylist()
                   if r["height_observation_id"])
        found = trace(layers, "derived.patient_bmi_latest", row["patient_key"])
    finally:
        layers.close()
    for step in found["observations"]:
        lines = open(step["raw"]["source_path"], encoding="utf-8").read().splitlines()
        assert json.loads(lines[step["raw"]["line"] - 1])["id"] == step["observation_id"]
        assert step["raw"]["refine_run_id"]
    events = read_events(lineage_folder(placed) / "events.jsonl")
    for event in events:
        openlineage_validator(event)
    outputs = {o["name"]: o["namespace"] for e in events for o in e.get("outputs", [])}
    namespace = {"clickhouse": "chdb://", "lakehouse": "s3://"}[profile]
    assert any(name.endswith("observation") and where.startswith(namespace)
               for name, where in outputs.items())
