"""Integration tests of ingest -> refine -> derive against a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from storage_backends.base import BackendUnavailable
from storage_backends.postgres import PostgresBackend
from tests.fhir_factory import observation, patient, patient_key, write_ndjson
from vitalflow import pipeline
from vitalflow.database import OwnershipError, act_as
from vitalflow.generate import generate
from vitalflow.tables import AGE_BAND_SUMMARY, PATIENT_BMI_LATEST

pytestmark = pytest.mark.postgres

SNAPSHOT_QUERIES = {
    "patient": "SELECT patient_key, gender, birth_date, version, content_hash, raw_record_id "
               "FROM refined.patient ORDER BY 1",
    "observation": "SELECT observation_id, patient_key, measure, value, unit, effective_at, "
                   "status, version, raw_record_id FROM refined.observation ORDER BY 1",
    "quarantine": "SELECT raw_record_id, reason, resource_type FROM refined.quarantine ORDER BY 1",
    "pending": "SELECT observation_id FROM refined.observation_pending ORDER BY 1",
    "bmi": "SELECT patient_key, sex, height_cm, height_observation_id, weight_kg, "
           "weight_observation_id, bmi, weight_category, age_years "
           "FROM derived.patient_bmi_latest ORDER BY 1",
    "summary": "SELECT age_band, sex, weight_category, patients, mean_bmi "
               "FROM derived.age_band_summary ORDER BY 1, 2, 3",
}


def snapshot(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in SNAPSHOT_QUERIES.items()}


def assert_reconciles(summary: dict) -> None:
    for resource, c in summary["counts"].items():
        assert c["read"] == c["refined"] + c["quarantined"] + c["filtered"] + c["duplicates"], \
            (resource, c)


@pytest.fixture
def generated(tmp_path):
    out = tmp_path / "input"
    report = generate(out, 120, seed=7, defect_rate=0.15)
    return out, report


def test_every_generated_defect_is_accounted_for(settings, generated):
    source, report = generated
    summary = pipeline.run(settings, source)
    assert_reconciles(summary)
    obs, pat = summary["counts"]["Observation"], summary["counts"]["Patient"]
    defects = report.defects
    assert obs["read"] == report.observations
    assert pat["read"] == report.patients
    assert pat["duplicates"] == defects["patient_duplicate"]
    assert obs["duplicates"] == defects["duplicate"] + defects["newer_version"]
    reasons = summary["quarantine_reasons"]
    assert reasons["malformed_json"] == defects["malformed_json"]
    assert reasons["missing_subject"] == defects["missing_subject"]
    assert reasons["invalid_code"] == defects["unknown_code"]
    assert reasons["unknown_unit"] == defects["unknown_unit"]
    assert reasons["out_of_range"] == defects["impossible_value"]
    assert reasons["unknown_patient"] == defects["orphan"]
    clean = report.observations - sum(v for k, v in defects.items() if k != "patient_duplicate")
    assert obs["refined"] == clean == summary["tables"]["refined.observation"]
    assert summary["tables"]["refined.quarantine"] == obs["quarantined"]
    # Newer versions won although they came first in the file.
    with psycopg.connect(settings.database.url) as conn:
        amended = conn.execute("SELECT count(*) FROM refined.observation WHERE version = 2"
                               ).fetchone()[0]
    assert amended == defects["newer_version"]


def test_rerun_is_idempotent(settings, generated):
    source, _ = generated
    pipeline.run(settings, source)
    before = snapshot(settings.database.url)
    with psycopg.connect(settings.database.url) as conn:
        stamps = conn.execute("SELECT max(refined_at), max(change_seq) FROM refined.observation"
                              ).fetchone()
        computed = conn.execute("SELECT max(computed_at) FROM derived.patient_bmi_latest"
                                ).fetchone()
    again = pipeline.run(settings, source)
    assert again["ingest"]["new_batches"] == 0
    assert snapshot(settings.database.url) == before
    with psycopg.connect(settings.database.url) as conn:
        assert conn.execute("SELECT max(refined_at), max(change_seq) FROM refined.observation"
                            ).fetchone() == stamps
        assert conn.execute("SELECT max(computed_at) FROM derived.patient_bmi_latest"
                            ).fetchone() == computed


def test_same_records_in_a_second_file_are_duplicates(settings, tmp_path):
    records = [patient("p1"), observation("o1", "p1", "weight", 70, "2020-01-01T10:00:00Z")]
    write_ndjson(tmp_path / "a" / "Observation.ndjson", records)
    write_ndjson(tmp_path / "b" / "Observation.ndjson", records + [records[1]])
    pipeline.run(settings, tmp_path / "a")
    second = pipeline.run(settings, tmp_path / "b")
    assert second["counts"]["Observation"] == {"read": 2, "refined": 0, "quarantined": 0,
                                               "filtered": 0, "duplicates": 2, "pending": 0}
    assert second["counts"]["Patient"]["duplicates"] == 1


@pytest.mark.parametrize("order", ["old_first", "new_first"])
def test_newer_version_replaces_older_in_any_order(settings, tmp_path, order):
    old = observation("o1", "p1", "weight", 70, "2020-01-01T10:00:00Z", version=1)
    new = observation("o1", "p1", "weight", 72.5, "2020-01-01T10:00:00Z", version=2)
    first, second = (old, new) if order == "old_first" else (new, old)
    write_ndjson(tmp_path / "1" / "Patient.ndjson", [patient("p1")])
    write_ndjson(tmp_path / "1" / "Observation.ndjson", [first])
    write_ndjson(tmp_path / "2" / "Observation.ndjson", [second])
    pipeline.run(settings, tmp_path / "1")
    pipeline.run(settings, tmp_path / "2")
    with psycopg.connect(settings.database.url) as conn:
        assert conn.execute("SELECT value, version FROM refined.observation").fetchall() == [
            (72.5, 2)]
        assert conn.execute("SELECT weight_kg FROM derived.patient_bmi_latest").fetchone() == (
            72.5,)


def _weight(value: float, version: int | None, updated: str) -> dict:
    resource = observation("o1", "p1", "weight", value, "2020-01-01T10:00:00Z", version=version)
    resource.setdefault("meta", {})["lastUpdated"] = updated
    return resource


@pytest.mark.parametrize("order", ["winner_first", "winner_last", "one_file"])
@pytest.mark.parametrize(("winner", "loser"), [
    # versionId first, even against a later lastUpdated
    ((72.5, 2, "2021-01-01T00:00:00Z"), (70, 1, "2022-01-01T00:00:00Z")),
    ((70, 2, "2021-01-01T00:00:00Z"), (72.5, 1, "2022-01-01T00:00:00Z")),
    # without versionIds lastUpdated decides (two value pairs: the content hash, the last
    # tie-break, favours the loser in one of them)
    ((72.5, None, "2022-01-01T00:00:00Z"), (70, None, "2021-01-01T00:00:00Z")),
    ((70, None, "2022-01-01T00:00:00Z"), (72.5, None, "2021-01-01T00:00:00Z")),
])
def test_version_ranking_versionid_then_last_updated(settings, tmp_path, order, winner, loser):
    first, second = (winner, loser) if order == "winner_first" else (loser, winner)
    write_ndjson(tmp_path / "1" / "Patient.ndjson", [patient("p1")])
    if order == "one_file":
        write_ndjson(tmp_path / "1" / "Observation.ndjson", [_weight(*loser), _weight(*winner)])
    else:
        write_ndjson(tmp_path / "1" / "Observation.ndjson", [_weight(*first)])
        write_ndjson(tmp_path / "2" / "Observation.ndjson", [_weight(*second)])
    for folder in sorted(tmp_path.iterdir()):
        pipeline.run(settings, folder)
    with psycopg.connect(settings.database.url) as conn:
        assert conn.execute("SELECT value FROM refined.observation").fetchall() == [(winner[0],)]


def test_orphans_wait_in_quarantine_until_their_patient_arrives(settings, tmp_path):
    write_ndjson(tmp_path / "obs" / "Observation.ndjson",
                 [observation("o1", "late", "weight", 80, "2021-03-01T08:00:00Z"),
                  observation("o2", "late", "height", 180, "2021-03-01T08:00:00Z")])
    first = pipeline.run(settings, tmp_path / "obs")
    assert first["counts"]["Observation"]["quarantined"] == 2
    assert first["quarantine_reasons"] == {"unknown_patient": 2}
    assert first["tables"]["derived.patient_bmi_latest"] == 0
    write_ndjson(tmp_path / "pat" / "Patient.ndjson", [patient("late", birth="1990-01-01")])
    second = pipeline.run(settings, tmp_path / "pat")
    assert second["promoted_orphans"] == 2
    assert second["tables"]["refined.quarantine"] == 0
    assert second["tables"]["refined.observation_pending"] == 0
    with psycopg.connect(settings.database.url) as conn:
        row = conn.execute("SELECT bmi, weight_category, age_years FROM "
                           "derived.patient_bmi_latest").fetchone()
    assert row[0] == pytest.approx(80 / 1.8 ** 2)
    assert row[1:] == ("normal", 31)


@pytest.mark.parametrize("crash_in", ["_promote", "add"])
def test_crash_before_commit_leaves_nothing_and_rerun_matches_clean_run(
        settings, generated, monkeypatch, tmp_path, pg_server, crash_in):
    source, _ = generated
    from vitalflow.refine.merge import Merge, Staged

    settings.ingest.batch_rows = 500  # several chunks, so a crash can come between them
    # After every row is written (Merge._promote), or between two chunks (Staged.add).
    owner = Staged if crash_in == "add" else Merge
    real = getattr(owner, crash_in)
    calls = []

    def crash(*args):
        calls.append(1)
        if len(calls) == 2 or crash_in == "_promote":
            raise ConnectionResetError("simulated crash before commit")
        return real(*args)

    monkeypatch.setattr(owner, crash_in, crash)
    with pytest.raises(ConnectionResetError):
        pipeline.run(settings, source)
    crashed = snapshot(settings.database.url)
    assert all(not rows for name, rows in crashed.items()), "half-written refined/derived rows"
    monkeypatch.setattr(owner, crash_in, real)
    pipeline.run(settings, source)

    clean_settings = settings.model_copy(update={
        "paths": settings.paths.model_copy(update={"home": tmp_path / "clean"}),
        "ingest": settings.ingest.model_copy(update={"batch_rows": 100_000}),
        # ... and standardised in worker processes, as large runs are.
        "refine": settings.refine.model_copy(update={"worker_process_min_records": 0})})
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE clean_run OWNER vitalflow")
    clean_url = pg_server.url("clean_run")
    clean_settings.database.url = clean_url
    pipeline.run(clean_settings, source)
    assert snapshot(settings.database.url) == snapshot(clean_url)
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute("DROP DATABASE clean_run WITH (FORCE)")


def test_derived_tables_refuse_writers_other_than_their_owner(settings, generated):
    pipeline.run(settings, generated[0])
    store = PostgresBackend(settings.database.url)
    with store.connect() as conn:
        with pytest.raises(OwnershipError, match="owned by flow 'derive_patient_bmi'"):
            act_as(conn, PATIENT_BMI_LATEST, "some_other_flow")
    with store.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                match="writer <none> refused"):
        conn.execute("DELETE FROM derived.patient_bmi_latest")
    with store.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT set_config('vitalflow.flow', 'derive_patient_bmi', true)")
        conn.execute("UPDATE derived.age_band_summary SET patients = 0")
    with store.connect() as conn:
        act_as(conn, AGE_BAND_SUMMARY, AGE_BAND_SUMMARY.owner)
        conn.execute("UPDATE derived.age_band_summary SET patients = patients")


def test_unreachable_database_gives_a_clear_error_without_secrets(settings):
    store = PostgresBackend("postgresql://vitalflow:s3cret@127.0.0.1:1/vitalflow")
    with pytest.raises(BackendUnavailable) as info:
        with store.connect():
            pass
    message = str(info.value)
    assert "s3cret" not in message
    assert "vitalflow services up" in message and "127.0.0.1:1" in message


def test_bad_inputs_never_crash_the_run(settings, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "Observation.ndjson").write_bytes(b"")
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    (folder / "Patient.ndjson").write_bytes(png)
    (folder / "Observation-big.ndjson").write_text('{"resourceType": "Observation", "id": "x", '
                                                   '"note": "' + "x" * (50 * 1024 * 1024) + '"}\n')
    (folder / "broken.ndjson.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    summary = pipeline.run(settings, folder)
    assert_reconciles(summary)
    assert summary["quarantine_reasons"] == {"malformed_json": 1, "record_too_large": 1}
    assert len(summary["ingest"]["errors"]) == 1 and "broken.ndjson.gz" in \
        summary["ingest"]["errors"][0]


def test_sql_metrics_match_the_python_definitions(settings, generated):
    from vitalflow.derive.metrics import bmi, summarise_age_bands, weight_category

    pipeline.run(settings, generated[0])
    with psycopg.connect(settings.database.url) as conn:
        cursor = conn.execute("SELECT sex, height_cm, weight_kg, bmi, weight_category, age_years "
                              "FROM derived.patient_bmi_latest")
        names = [d.name for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        summary = conn.execute(SNAPSHOT_QUERIES["summary"]).fetchall()
    assert rows
    for row in rows:
        if row["height_cm"] is not None:
            assert row["bmi"] == pytest.approx(bmi(row["weight_kg"], row["height_cm"]))
        assert row["weight_category"] == weight_category(row["bmi"], row["age_years"])
    expected = summarise_age_bands(rows, settings.derive.age_bands)
    assert [tuple(r.values()) for r in expected] == [
        (band, sex, category, patients, pytest.approx(mean) if mean is not None else None)
        for band, sex, category, patients, mean in summary]


def test_incremental_derive_rewrites_only_changed_patients(settings, tmp_path):
    write_ndjson(tmp_path / "1" / "Patient.ndjson", [patient("a"), patient("b")])
    write_ndjson(tmp_path / "1" / "Observation.ndjson", [
        observation(f"{p}-{kind}", p, kind, value, "2020-01-01T10:00:00Z")
        for p in ("a", "b") for kind, value in (("height", 170), ("weight", 70))])
    pipeline.run(settings, tmp_path / "1")
    with psycopg.connect(settings.database.url) as conn:
        before = dict(conn.execute(
            "SELECT patient_key, computed_at FROM derived.patient_bmi_latest").fetchall())
    write_ndjson(tmp_path / "2" / "Observation.ndjson",
                 [observation("a-weight-2", "a", "weight", 95, "2020-12-01T10:00:00Z")])
    summary = pipeline.run(settings, tmp_path / "2")
    assert summary["derive"]["changed_patients"] == 1
    assert summary["derive"]["bmi_rows_written"] == 1
    with psycopg.connect(settings.database.url) as conn:
        after = dict(conn.execute(
            "SELECT patient_key, computed_at FROM derived.patient_bmi_latest").fetchall())
        category = conn.execute("SELECT weight_category FROM derived.patient_bmi_latest "
                                "WHERE patient_key = %s", (patient_key("a"),)).fetchone()[0]
    a, b = patient_key("a"), patient_key("b")
    assert after[b] == before[b] and after[a] > before[a]
    assert category == "obese"  # 95 kg at 170 cm, the height from within the year before


def test_timestamps_keep_their_instant_through_copy(settings, tmp_path):
    from datetime import UTC, datetime

    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1")])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        observation("o1", "p1", "weight", 70, "2020-06-01T10:30:15.250+02:00"),
        observation("o2", "p1", "height", 170, "2020-06-01")])
    pipeline.run(settings, tmp_path / "in")
    with psycopg.connect(settings.database.url) as conn:
        stamps = dict(conn.execute("SELECT observation_id, effective_at FROM refined.observation"
                                   ).fetchall())
    assert stamps["o1"] == datetime(2020, 6, 1, 8, 30, 15, 250000, tzinfo=UTC)
    assert stamps["o2"] == datetime(2020, 6, 1, tzinfo=UTC)
