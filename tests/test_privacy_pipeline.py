"""End to end: no source identifier, name or key reaches refined, derived, logs or errors;
analysts read refined and derived but not identity; whitelist counts reconcile."""

from __future__ import annotations

import json
import logging
import os

import psycopg
import pytest

from tests.fhir_factory import observation, patient, write_ndjson
from vitalflow import pipeline
from vitalflow.export import TABLES
from vitalflow.generate import generate
from vitalflow.privacy.identity import ANALYST
from vitalflow.privacy.keys import KEY_ENV
from vitalflow.storage import open_layers

pytestmark = pytest.mark.postgres


def _identifiers(folder) -> set[str]:
    """Patient ids, names and identifier values of the generated input."""
    found = set()
    for line in (folder / "Patient.ndjson").read_text().splitlines():
        try:
            resource = json.loads(line)
        except ValueError:
            continue
        if not isinstance(resource, dict):
            continue
        found.add(str(resource.get("id")))
        for name in resource.get("name") or []:
            found.update(n for n in [name.get("family"), *(name.get("given") or [])] if n)
        for identifier in resource.get("identifier") or []:
            found.add(str(identifier.get("value")))
    return {text for text in found if text and text != "None" and len(text) > 3}


def test_no_identifier_or_key_in_tables_or_logs(settings, tmp_path, caplog):
    generate(tmp_path / "in", 40, seed=3, defect_rate=0.2)
    secrets = _identifiers(tmp_path / "in") | {os.environ[KEY_ENV]}
    caplog.set_level(logging.DEBUG)
    summary = pipeline.run(settings, tmp_path / "in")
    layers = open_layers(settings)
    text = json.dumps(summary, default=str) + caplog.text
    for name, table in TABLES.items():
        backend = layers.derived if table.layer == "derived" else layers.refined
        text += json.dumps(backend.read(table).to_pylist(), default=str)
    leaked = sorted(s for s in secrets if s in text)
    assert not leaked, f"{len(leaked)} identifiers leaked"
    assert summary["tables"]["refined.patient"] > 30


def test_analyst_reads_derived_but_not_identity(settings, tmp_path, pg_server):
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1", birth="1970-01-01")])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        observation("w1", "p1", "weight", 80, "2022-05-01T09:00:00Z")])
    pipeline.run(settings, tmp_path / "in")
    database = settings.database.url.split("?")[0].rsplit("/", 1)[1]
    with psycopg.connect(pg_server.url(database, ANALYST)) as conn:
        assert conn.execute("SELECT count(*) FROM derived.patient_bmi_latest").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM refined.observation").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM identity.patient_identity")


def test_whitelist_counts_reconcile_with_run_totals(settings, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text((settings.filter.path.read_text()) + """
  - name: effective_since_2021
    resource: Observation
    field: effective_at
    min: 2021-01-01
""")
    settings.filter.rules_file = rules
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1", birth="1970-01-01")])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        observation("w1", "p1", "weight", 80, "2020-05-01T09:00:00Z"),
        observation("w2", "p1", "weight", 81, "2021-05-01T09:00:00Z"),
        observation("h1", "p1", "height", 180, "2019-05-01T09:00:00Z")])
    summary = pipeline.run(settings, tmp_path / "in")
    assert summary["counts"]["Observation"] == {"read": 3, "refined": 1, "quarantined": 0,
                                               "filtered": 2, "duplicates": 0, "pending": 0}
    assert summary["filter_reasons"] == {"whitelist:effective_since_2021": 2}
