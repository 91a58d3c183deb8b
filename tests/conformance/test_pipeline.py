"""The unchanged pipeline on every storage profile: counts reconcile, incremental equals a full
rebuild, re-runs and crashes change nothing, and derived rows equal the Postgres profile's."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conformance.profiles import PROFILES, profile_settings
from tests.fhir_factory import observation, patient, patient_key, write_ndjson
from vitalflow import pipeline
from vitalflow.generate import generate
from vitalflow.pipeline import rebuild
from vitalflow.storage import open_layers
from vitalflow.tables import AGE_BAND_SUMMARY, PATIENT_BMI_LATEST

pytestmark = pytest.mark.postgres


@pytest.fixture(params=list(PROFILES), ids=list(PROFILES))
def profile(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generated")
    generate(folder, 80, seed=7, defect_rate=0.2)
    return folder


@pytest.fixture(scope="module")
def reference(generated, tmp_path_factory, pg_server) -> dict:
    """The generated input run once on the Postgres profile (in-database SQL)."""
    from tests.conformance.profiles import fresh_database

    with fresh_database(pg_server) as url:
        settings = profile_settings("postgres", tmp_path_factory.mktemp("reference"), url, None)
        summary = pipeline.run(settings, generated)
        return {"summary": summary, "derived": derived_rows(settings)}


def derived_rows(settings) -> dict[str, list[dict]]:
    layers = open_layers(settings)
    rows = {}
    for table in (PATIENT_BMI_LATEST, AGE_BAND_SUMMARY):
        columns = [c for c in table.column_names if c != "computed_at"]
        rows[table.name] = sorted(layers.derived.read(table, columns).to_pylist(),
                                  key=lambda r: tuple(str(r[k]) for k in table.primary_key))
    return rows


def assert_same_rows(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name in expected:
        assert len(got[name]) == len(expected[name]), name
        for mine, theirs in zip(got[name], expected[name], strict=True):
            assert mine.keys() == theirs.keys()
            for column, value in theirs.items():
                other = mine[column]
                if isinstance(value, float) and isinstance(other, float):
                    assert math.isclose(other, value, rel_tol=1e-9), (name, column)
                else:
                    assert other == value, (name, column, mine)


def reconciles(summary: dict) -> None:
    for resource_type, c in summary["counts"].items():
        assert c["read"] == c["refined"] + c["quarantined"] + c["filtered"] + c["duplicates"], (
            resource_type, c)


@pytest.fixture
def settings_for(request, tmp_path, database_url):
    """Settings of a profile, made once per test (a profile may create databases)."""
    made = {}

    def settings(name: str):
        if name not in made:
            made[name] = profile_settings(name, tmp_path / name, database_url, request)
        return made[name]
    return settings


def test_counts_and_derived_rows_equal_the_postgres_profile(profile, settings_for, generated,
                                                            reference):
    summary = pipeline.run(settings_for(profile), generated)
    reconciles(summary)
    expected = reference["summary"]
    assert summary["counts"] == expected["counts"]
    assert summary["quarantine_reasons"] == expected["quarantine_reasons"]
    assert summary["tables"] == expected["tables"]
    assert_same_rows(derived_rows(settings_for(profile)), reference["derived"])


def test_rerun_changes_nothing(profile, settings_for, generated):
    settings = settings_for(profile)
    pipeline.run(settings, generated)
    before = derived_rows(settings)
    again = pipeline.run(settings, generated)
    assert all(c["read"] == 0 for c in again["counts"].values())
    assert (again["derive"]["bmi_rows_written"], again["derive"]["summary_rows_written"]) == (0, 0)
    assert derived_rows(settings) == before


def test_incremental_equals_full_rebuild(profile, settings_for, tmp_path):
    settings = settings_for(profile)
    write_ndjson(tmp_path / "1" / "Patient.ndjson",
                 [patient("a", birth="1970-02-28"), patient("b", birth="2010-06-01", gender="male"),
                  patient("c", birth="1999-12-31")])
    write_ndjson(tmp_path / "1" / "Observation.ndjson", [
        observation("ha", "a", "height", 170, "2020-01-01T10:00:00Z"),
        observation("wa", "a", "weight", 80, "2020-06-01T10:00:00Z"),
        observation("hb", "b", "height", 150, "2021-01-01T10:00:00Z"),
        observation("wb", "b", "weight", 45, "2021-01-20T10:00:00Z"),
        observation("wc", "c", "weight", 60, "2021-01-20T10:00:00Z"),
        observation("wo", "orphan", "weight", 60, "2021-01-20T10:00:00Z")])
    write_ndjson(tmp_path / "2" / "Observation.ndjson", [
        # a newer version moves a's weight to c; b gets a later weight out of its height window
        observation("wa", "c", "weight", 81, "2020-06-01T10:00:00Z", version=2),
        observation("wb2", "b", "weight", 47, "2021-03-01T10:00:00Z"),
        observation("hc", "c", "height", 160, "2021-01-01T10:00:00Z")])
    write_ndjson(tmp_path / "3" / "Patient.ndjson", [patient("orphan", birth="1950-01-01")])
    for step in ("1", "2", "3"):
        summary = pipeline.run(settings, tmp_path / step)
        reconciles(summary)
    assert summary["promoted_orphans"] == 1
    incremental = derived_rows(settings)
    layers = open_layers(settings)
    rebuild = pipeline.derive_stage(settings, layers, full=True)
    assert (rebuild.bmi_rows_written, rebuild.bmi_rows_deleted) == (0, 0)
    assert (rebuild.summary_rows_written, rebuild.summary_rows_deleted) == (0, 0)
    assert derived_rows(settings) == incremental
    by_patient = {r["patient_key"]: r for r in incremental["patient_bmi_latest"]}
    b, c = patient_key("b"), patient_key("c")
    assert set(by_patient) == {b, c, patient_key("orphan")}
    assert (by_patient[c]["weight_observation_id"], by_patient[c]["height_cm"]) == ("wc", 160)
    assert by_patient[b]["height_cm"] is None  # 150 cm is older than a child's 31 days
    assert by_patient[b]["weight_category"] == "unknown"
    # a new height alone (no weight changed) derives its person again
    write_ndjson(tmp_path / "4" / "Observation.ndjson", [
        observation("hb2", "b", "height", 152, "2021-02-20T10:00:00Z")])
    pipeline.run(settings, tmp_path / "4")
    latest = {r["patient_key"]: r for r in derived_rows(settings)["patient_bmi_latest"]}
    assert (latest[b]["height_cm"], latest[b]["height_observation_id"]) == (152, "hb2")


def test_crash_between_layers_is_completed_by_the_next_run(profile, settings_for, generated,
                                                           reference, monkeypatch):
    settings = settings_for(profile)

    def crash(*args, **kwargs):
        raise ConnectionResetError("simulated crash after refine, before derive")

    real = pipeline.derive_stage
    monkeypatch.setattr(pipeline, "derive_stage", crash)
    with pytest.raises(ConnectionResetError):
        pipeline.run(settings, generated)
    monkeypatch.setattr(pipeline, "derive_stage", real)
    pipeline.run(settings, generated)
    assert_same_rows(derived_rows(settings), reference["derived"])


def test_rebuild_from_raw_equals_incremental_runs(profile, settings_for, generated, tmp_path):
    settings = settings_for(profile)
    first = pipeline.run(settings, generated)
    write_ndjson(tmp_path / "later" / "Observation.ndjson", [
        observation("late-w", "late", "weight", 70, "2022-01-01T10:00:00Z")])
    write_ndjson(tmp_path / "later" / "Patient.ndjson", [patient("late", birth="1980-05-05")])
    pipeline.run(settings, tmp_path / "later")
    incremental = derived_rows(settings)
    layers = open_layers(settings)
    refined, _ = rebuild(settings, layers)
    layers.close()
    assert refined.counts["Observation"].read == first["counts"]["Observation"]["read"] + 1
    assert derived_rows(settings) == incremental


# Heights of 200 cm make BMI = weight / 4 exactly, so the category boundaries are hit exactly.
# Birth dates are generalised to 1 January of their year, so ages count from there.
BOUNDARY_PATIENTS = [patient("bmi-18.5", birth="1980-01-01"), patient("bmi-25", birth="1980-01-01"),
                     patient("bmi-30", birth="1980-01-01"),
                     patient("age-17", birth="2003-01-01", gender="male"),
                     patient("age-18", birth="2003-01-01", gender="male")]
BOUNDARY_OBSERVATIONS = [
    observation("h-18.5", "bmi-18.5", "height", 200, "2020-01-01T10:00:00Z"),
    observation("w-18.5", "bmi-18.5", "weight", 74, "2020-06-01T10:00:00Z"),
    observation("h-25", "bmi-25", "height", 200, "2020-01-01T10:00:00Z"),
    observation("w-25-before", "bmi-25", "weight", 60, "2020-03-01T10:00:00Z"),  # not the latest
    observation("w-25", "bmi-25", "weight", 100, "2020-06-01T10:00:00Z"),
    observation("h-30", "bmi-30", "height", 200, "2020-01-01T10:00:00Z"),
    observation("w-30", "bmi-30", "weight", 120, "2020-06-01T10:00:00Z"),
    # the day before the 18th birthday: a child, whose height must be at most 31 days old
    observation("h-17", "age-17", "height", 200, "2020-12-11T10:00:00Z"),
    observation("w-17", "age-17", "weight", 100, "2020-12-31T10:00:00Z"),
    # the 18th birthday: an adult, whose 40-day-old height still counts
    observation("h-18", "age-18", "height", 200, "2020-11-22T10:00:00Z"),
    observation("w-18", "age-18", "weight", 100, "2021-01-01T10:00:00Z")]


def test_category_and_age_boundaries(profile, settings_for, tmp_path):
    settings = settings_for(profile)
    write_ndjson(tmp_path / "in" / "Patient.ndjson", BOUNDARY_PATIENTS)
    write_ndjson(tmp_path / "in" / "Observation.ndjson", BOUNDARY_OBSERVATIONS)
    reconciles(pipeline.run(settings, tmp_path / "in"))
    rows = derived_rows(settings)
    latest = {r["patient_key"]: (r["bmi"], r["weight_category"], r["age_years"])
              for r in rows["patient_bmi_latest"]}
    assert latest == {patient_key("bmi-18.5"): (18.5, "normal", 40),
                      patient_key("bmi-25"): (25.0, "overweight", 40),
                      patient_key("bmi-30"): (30.0, "obese", 40),
                      patient_key("age-17"): (25.0, "not_classified_under_18", 17),
                      patient_key("age-18"): (25.0, "overweight", 18)}
    cells = {(r["age_band"], r["sex"], r["weight_category"]): (r["patients"], r["mean_bmi"])
             for r in rows["age_band_summary"]}
    assert cells == {("30-44", "female", "normal"): (1, 18.5),
                     ("30-44", "female", "overweight"): (1, 25.0),
                     ("30-44", "female", "obese"): (1, 30.0),
                     ("0-17", "male", "not_classified_under_18"): (1, 25.0),
                     ("18-29", "male", "overweight"): (1, 25.0)}


def test_patient_only_change_is_derived_again(profile, settings_for, tmp_path):
    """A newer Patient version alone (no observation changed) re-derives its person."""
    settings = settings_for(profile)
    write_ndjson(tmp_path / "1" / "Patient.ndjson", [patient("q", birth="1980-03-03", version=1)])
    write_ndjson(tmp_path / "1" / "Observation.ndjson", [
        observation("hq", "q", "height", 200, "2020-06-01T10:00:00Z"),
        observation("wq", "q", "weight", 80, "2020-06-01T10:00:00Z")])
    write_ndjson(tmp_path / "2" / "Patient.ndjson", [
        patient("q", birth="2010-03-03", gender="male", version=2)])
    expected = {"1": ("female", 40, "normal"), "2": ("male", 10, "not_classified_under_18")}
    for step, (sex, age, category) in expected.items():
        pipeline.run(settings, tmp_path / step)
        rows = derived_rows(settings)
        (row,) = rows["patient_bmi_latest"]
        assert (row["sex"], row["age_years"], row["weight_category"]) == (sex, age, category)
        (cell,) = rows["age_band_summary"]
        assert (cell["sex"], cell["weight_category"], cell["patients"]) == (sex, category, 1)
