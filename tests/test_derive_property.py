"""Property: incremental derive after any sequence of Patient and Observation changes equals a
full rebuild."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings as hyp_settings, strategies as st

from tests.fhir_factory import observation, patient, write_ndjson
from tests.test_pipeline import SNAPSHOT_QUERIES
from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.storage import open_layers

pytestmark = pytest.mark.postgres

PATIENTS = [f"p{i}" for i in range(4)]
START = date(2015, 1, 1)
# With merging on, records sharing a medical record number are one person and a later version
# with another number (or none) takes the record out again; without merging the identifiers
# are just Patient changes. The property runs both ways.
MRNS = [None, "MRN-1", "MRN-2"]


def patient_version(pid: str, year: int, gender: str, version: int, deceased: bool,
                    mrn: str | None) -> dict:
    resource = patient(pid, f"{year}-06-15", gender, version)
    if deceased:
        resource["deceasedDateTime"] = "2023-03-01T08:00:00Z"
    if mrn:
        resource["identifier"] = [{"system": "urn:mrn", "value": mrn}]
    return resource


patient_change = st.builds(
    patient_version, st.sampled_from(PATIENTS), st.integers(1940, 2020),
    st.sampled_from(["male", "female"]), st.integers(1, 3), st.booleans(), st.sampled_from(MRNS))
observation_change = st.builds(
    lambda oid, pid, kind, value, day, version: observation(
        f"o{oid}", pid, kind, value if kind == "weight" else value + 60,
        (START + timedelta(days=day)).isoformat() + "T12:00:00Z", version=version),
    st.integers(0, 11), st.sampled_from(PATIENTS), st.sampled_from(["height", "weight"]),
    st.floats(5, 150, allow_nan=False).map(lambda v: round(v, 1)), st.integers(0, 2500),
    st.integers(1, 4))
runs = st.lists(st.lists(st.one_of(patient_change, observation_change), min_size=1, max_size=8),
                min_size=1, max_size=4)
# A newer Patient version alone, changing sex and birth date, must re-derive its person.
PATIENT_ONLY_UPDATE = [
    [patient("p0", "1980-06-15", "female", 1),
     observation("o0", "p0", "height", 170, "2020-06-01T12:00:00Z"),
     observation("o1", "p0", "weight", 65, "2020-06-01T12:00:00Z")],
    [patient("p0", "2010-06-15", "male", 2)]]


def derived_rows(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(SNAPSHOT_QUERIES[name]).fetchall()
                for name in ("bmi", "summary")}


# Found by this property with merging on: a record that joins another person by a shared MRN
# left its old person's derived row behind (incremental kept it, a full rebuild dropped it).
# Refine now touches the person a record leaves.
MERGE_LEAVES_STALE_PERSON = [
    [patient_version("p1", 1995, "male", 2, True, None),
     patient_version("p3", 1984, "male", 3, True, None)],
    [patient_version("p0", 1972, "male", 3, True, None),
     patient_version("p0", 1985, "male", 3, True, None),
     observation("o0", "p0", "weight", 65.1, "2015-02-08T12:00:00Z", version=2),
     patient_version("p0", 2020, "male", 2, True, None),
     patient_version("p0", 2012, "male", 1, False, None),
     patient_version("p3", 1992, "male", 2, True, "MRN-1"),
     patient_version("p0", 1940, "male", 1, False, None)],
    [patient_version("p0", 1993, "male", 3, True, None),
     patient_version("p0", 1967, "male", 3, True, None),
     patient_version("p0", 1940, "male", 1, False, "MRN-1"),
     observation("o10", "p2", "weight", 5.0, "2020-05-23T12:00:00Z", version=4),
     observation("o3", "p0", "height", 199.2, "2015-09-25T12:00:00Z", version=4),
     observation("o7", "p2", "weight", 150.0, "2015-06-14T12:00:00Z", version=2),
     patient_version("p0", 2009, "male", 3, True, "MRN-1")]]


def assert_incremental_equals_full(pg_server, home: Path, change_sets: list[list[dict]],
                                   merging: bool) -> None:
    name = f"prop_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER vitalflow")
    try:
        settings = load_settings(paths={"home": home}, database={"url": pg_server.url(name)},
                                 merge={"enabled": merging})
        for number, changes in enumerate(change_sets):
            folder = home / f"input-{number}"
            # The run number keeps each file's content (and so its batch) distinct.
            write_ndjson(folder / f"Bundle{number}.ndjson", changes)
            pipeline.run(settings, folder)
        incremental = derived_rows(settings.database.url)
        rebuild = pipeline.derive_stage(settings, open_layers(settings), full=True)
        assert derived_rows(settings.database.url) == incremental
        assert (rebuild.bmi_rows_written, rebuild.bmi_rows_deleted) == (0, 0)
        assert (rebuild.summary_rows_written, rebuild.summary_rows_deleted) == (0, 0)
    finally:
        with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@hyp_settings(deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
@given(change_sets=runs, merging=st.booleans())
@example(change_sets=PATIENT_ONLY_UPDATE, merging=False)
@example(change_sets=MERGE_LEAVES_STALE_PERSON, merging=True)
def test_incremental_equals_full_rebuild(pg_server, tmp_path_factory, change_sets, merging):
    assert_incremental_equals_full(pg_server, tmp_path_factory.mktemp("prop"), change_sets,
                                   merging=merging)


def test_incremental_equals_full_rebuild_with_merging(pg_server, tmp_path):
    assert_incremental_equals_full(pg_server, tmp_path, MERGE_LEAVES_STALE_PERSON, merging=True)
