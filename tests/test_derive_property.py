"""Property: incremental derive after any sequence of changes equals a full rebuild."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from tests.fhir_factory import observation, patient, write_ndjson
from tests.test_pipeline import SNAPSHOT_QUERIES
from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.storage import open_layers

pytestmark = pytest.mark.postgres

PATIENTS = [f"p{i}" for i in range(4)]
START = date(2015, 1, 1)

patient_change = st.builds(
    lambda pid, year, gender, version: patient(pid, f"{year}-06-15", gender, version),
    st.sampled_from(PATIENTS), st.integers(1940, 2020), st.sampled_from(["male", "female"]),
    st.integers(1, 3))
observation_change = st.builds(
    lambda oid, pid, kind, value, day, version: observation(
        f"o{oid}", pid, kind, value if kind == "weight" else value + 60,
        (START + timedelta(days=day)).isoformat() + "T12:00:00Z", version=version),
    st.integers(0, 11), st.sampled_from(PATIENTS), st.sampled_from(["height", "weight"]),
    st.floats(5, 150, allow_nan=False).map(lambda v: round(v, 1)), st.integers(0, 2500),
    st.integers(1, 4))
runs = st.lists(st.lists(st.one_of(patient_change, observation_change), min_size=1, max_size=8),
                min_size=1, max_size=4)


def derived_rows(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(SNAPSHOT_QUERIES[name]).fetchall()
                for name in ("bmi", "summary")}


@hyp_settings(deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
@given(change_sets=runs)
def test_incremental_equals_full_rebuild(pg_server, tmp_path_factory, change_sets):
    name = f"prop_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER vitalflow")
    try:
        home: Path = tmp_path_factory.mktemp("prop")
        settings = load_settings(paths={"home": home}, database={"url": pg_server.url(name)})
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
