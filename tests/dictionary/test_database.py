"""In-database descriptions: the same comments on every storage profile, refreshed on change,
and `vitalflow dictionary check` failing when a database's comments drift."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import psycopg
import pytest

from tests.conformance.profiles import PROFILES, profile_settings
from vitalflow.dictionary.check import compare, database_problems, placements
from vitalflow.storage import open_layers
from vitalflow.tables import OBSERVATION

pytestmark = pytest.mark.postgres


@pytest.fixture(params=list(PROFILES), ids=list(PROFILES))
def layers(request, tmp_path, database_url):
    settings = profile_settings(request.param, tmp_path / "home", database_url, request)
    opened = open_layers(settings)
    yield opened
    opened.close()


def test_every_backend_holds_the_descriptions(layers):
    assert database_problems(layers) == []
    compared = {table.qualified_name for _, table, _ in placements(layers)}
    assert {"refined.observation", "derived.patient_bmi_latest", "meta.run"} <= compared
    held = layers.refined.comments(OBSERVATION)
    assert held[""] == OBSERVATION.description
    assert held["value"] == "value in the canonical unit [cm, kg or kg/m2 as in column unit]"


def test_comments_are_refreshed_when_the_description_changes(layers):
    changed = replace(OBSERVATION, description="Observations, described anew.", columns=tuple(
        replace(c, description="when it was measured") if c.name == "effective_at" else c
        for c in OBSERVATION.columns))
    layers.refined.create(changed)
    assert compare(layers.refined, changed) == []
    drift = {(p.table, p.column) for p in compare(layers.refined, OBSERVATION)}
    assert drift == {("refined.observation", None), ("refined.observation", "effective_at")}
    layers.refined.create(OBSERVATION)
    assert compare(layers.refined, OBSERVATION) == []


def test_psql_shows_the_descriptions(settings):
    open_layers(settings).close()
    with psycopg.connect(settings.database.url) as conn:
        rows = dict(conn.execute(
            "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
            "WHERE a.attrelid = 'refined.observation'::regclass AND a.attnum > 0 "
            "AND NOT a.attisdropped").fetchall())
        table = conn.execute("SELECT obj_description('refined.observation'::regclass, "
                             "'pg_class')").fetchone()[0]
        identity = conn.execute("SELECT obj_description('identity.rekey_log'::regclass, "
                                "'pg_class')").fetchone()[0]
    assert table == OBSERVATION.description
    assert rows == {c.name: c.comment for c in OBSERVATION.columns}
    assert identity.startswith("Every move of the pseudonyms")


def test_clickhouse_system_columns_carry_the_comments(request, tmp_path, database_url):
    settings = profile_settings("clickhouse", tmp_path / "home", database_url, request)
    layers = open_layers(settings)
    backend = layers.refined
    rows = dict(backend.client.query(
        "SELECT name, comment FROM system.columns WHERE database = {d:String} AND "
        "table = 'observation'", parameters={"d": backend.database(OBSERVATION)}).result_rows)
    assert {name: rows[name] for name in OBSERVATION.column_names} == {
        c.name: c.comment for c in OBSERVATION.columns}
    layers.close()


def test_iceberg_schema_carries_the_docs(request, tmp_path, database_url):
    settings = profile_settings("lakehouse", tmp_path / "home", database_url, request)
    layers = open_layers(settings)
    iceberg = layers.refined.load(OBSERVATION)
    assert {f.name: f.doc for f in iceberg.schema().fields} == {
        c.name: c.comment for c in OBSERVATION.columns}
    assert iceberg.properties["comment"] == OBSERVATION.description
    assert iceberg.properties["owner"] == "refine"
    raw = layers.raw.backend.load(("raw", "record"))
    assert raw.schema().find_field("raw_json").doc.startswith("the record's text")
    layers.close()


def test_check_command_names_table_and_column_that_drifted(settings, tmp_path):
    env = {**os.environ, "VITALFLOW__DATABASE__URL": settings.database.url,
           "VITALFLOW__PATHS__HOME": str(tmp_path / "home")}

    def check() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vitalflow.cli", "dictionary", "check"],
                              env=env, capture_output=True, text=True, timeout=300)

    first = check()
    assert first.returncode == 0, first.stderr
    # check opens the layers, which rewrites every described comment: drift that survives it
    # is a column nobody described.
    with psycopg.connect(settings.database.url) as conn:
        conn.execute("ALTER TABLE derived.age_band_summary ADD COLUMN hand_made text")
    second = check()
    assert second.returncode == 1
    assert "derived.age_band_summary" in second.stderr and "hand_made" in second.stderr
