"""The dictionary itself: complete, every form built from it valid, diffs flag breaking changes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from frictionless import Package
from jsonschema import Draft202012Validator

from vitalflow.dictionary import as_dict
from vitalflow.dictionary.diff import diff, load
from vitalflow.dictionary.formats import frictionless, json_schemas, openmetadata, stable_uuid
from vitalflow.dictionary.model import lint, tables
from vitalflow.ingest import RAW_SCHEMA
from vitalflow.reasons import DESCRIPTIONS, Filtered, Quarantine
from vitalflow.tables import OBSERVATION, RAW_RECORD, Column, Table

VERSIONS = Path(__file__).resolve().parents[2] / "docs" / "dictionary" / "versions"


def vitalflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vitalflow.cli", "dictionary", *args],
                          capture_output=True, text=True, timeout=300)


def test_every_table_and_column_is_described():
    assert lint() == []
    described = {t.qualified_name for t in tables()}
    for expected in ("raw.record", "raw.batch", "refined.observation_pending", "meta.run",
                     "meta.terminology_cache", "identity.patient_identity", "identity.person"):
        assert expected in described


def test_lint_names_table_and_column_of_each_gap():
    bad = Table("refined", "bad", "", "", (
        Column("height", "float", "a height", pii=None),
        Column("note", "text", ""),
        Column("ok", "int", "fine", unit="cm", pii=None, upstream=("refined.nowhere.x",))), ("ok",))
    found = {str(p) for p in lint((bad,))}
    assert found == {
        "refined.bad: no description", "refined.bad: no owner flow",
        "refined.bad.height: numeric (float) without a unit", "refined.bad.height: no PII class",
        "refined.bad.note: no description", "refined.bad.note: no PII class",
        "refined.bad.ok: no PII class",
        "refined.bad.ok: lineage or reference refined.nowhere.x names no described column"}


def test_static_check_command_passes():
    result = vitalflow("check", "--static")
    assert result.returncode == 0, result.stderr
    assert "dictionary complete" in result.stdout


def test_every_reason_code_has_a_page_entry():
    codes = {r["code"] for r in as_dict()["reasons"]}
    assert set(DESCRIPTIONS) == set(Quarantine) | set(Filtered)
    assert codes >= {str(c) for c in (*Quarantine, *Filtered)}
    assert "whitelist:observation_code" in codes  # from config/whitelist.yaml


def test_raw_record_description_is_the_raw_schema():
    assert RAW_RECORD.column_names == RAW_SCHEMA.names
    assert [f.nullable for f in RAW_SCHEMA] == [c.nullable for c in RAW_RECORD.columns]
    pytest.importorskip("pyiceberg")
    from vitalflow.ingest.iceberg import RECORD_SCHEMA

    assert [f.doc for f in RECORD_SCHEMA.fields] == [c.comment for c in RAW_RECORD.columns]
    assert RECORD_SCHEMA.identifier_field_ids == [1]


def test_restricted_tables_are_listed_with_access_rules_only():
    entries = {t["id"]: t for t in as_dict()["tables"]}
    identity = entries["identity.patient_identity"]
    assert identity["restricted"] and "columns" not in identity
    assert "vitalflow_reidentifier" in identity["access"]
    assert entries["refined.observation"]["columns"][0]["id"] == "refined.observation.observation_id"


def test_frictionless_package_is_valid():
    package = frictionless(as_dict())
    report = Package.validate_descriptor(package)
    assert report.valid, [e.message for e in report.errors]
    names = [r["name"] for r in package["resources"]]
    assert "refined.observation" in names and "raw.record" not in names
    observation = next(r for r in package["resources"] if r["name"] == "refined.observation")
    value = next(f for f in observation["schema"]["fields"] if f["name"] == "value")
    assert value["fhirSource"].startswith("Observation.valueQuantity.value")
    assert {"fields": ["patient_key"], "reference": {"resource": "refined.patient",
                                                     "fields": ["patient_key"]}} in \
        observation["schema"]["foreignKeys"]


def test_json_schemas_are_valid_and_accept_a_row():
    schemas = json_schemas(as_dict())
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    row = {"patient_key": "p_" + "0" * 32, "sex": "female", "weight_kg": 70.5,
           "weight_observation_id": "w1", "weight_at": "2024-01-01T10:00:00Z",
           "weight_category": "normal", "computed_at": "2024-01-02T00:00:00Z", "bmi": None}
    validator = Draft202012Validator(schemas["derived.patient_bmi_latest"])
    assert not list(validator.iter_errors(row))
    assert list(validator.iter_errors({**row, "unknown": 1}))


def test_exports_have_stable_ids():
    first, second = openmetadata(as_dict()), openmetadata(as_dict())
    assert first == second
    observation = next(t for t in first["tables"] if t["name"] == "observation")
    assert observation["id"] == stable_uuid("refined.observation")
    assert observation["fullyQualifiedName"] == "vitalflow.vitalflow.refined.observation"
    patient_key = next(c for c in observation["columns"] if c["name"] == "patient_key")
    assert {"tagFQN": "PII.Sensitive"} in patient_key["tags"]
    assert any(e["toEntity"]["fqn"].endswith("derived.patient_bmi_latest")
               for e in first["lineage"])


def test_diff_flags_breaking_changes():
    old = as_dict()
    new = copy.deepcopy(old)
    observation = next(t for t in new["tables"] if t["id"] == "refined.observation")
    observation["columns"] = [c for c in observation["columns"] if c["name"] != "source_unit"]
    value = next(c for c in observation["columns"] if c["name"] == "value")
    value["description"] = "value, canonical"
    status = next(c for c in observation["columns"] if c["name"] == "status")
    status["type"] = "int"
    observation["columns"].append({**value, "name": "extra", "id": "refined.observation.extra"})
    changes = {(c.kind, c.id, c.breaking) for c in diff(old, new)}
    assert ("removed", "refined.observation.source_unit", True) in changes
    assert ("changed", "refined.observation.status", True) in changes
    assert ("changed", "refined.observation.value", False) in changes
    assert ("added", "refined.observation.extra", False) in changes


def test_release_snapshot_has_no_breaking_change_against_the_code(tmp_path):
    """A breaking change needs a new version: `vitalflow dictionary snapshot` after the bump."""
    snapshot = VERSIONS / f"{as_dict()['version']}.json"
    assert snapshot.exists(), "run `vitalflow dictionary snapshot` for this release"
    assert [str(c) for c in diff(load(snapshot), as_dict()) if c.breaking] == []
    changed = json.loads(snapshot.read_text())
    changed["tables"] = [t for t in changed["tables"] if t["id"] != "derived.age_band_summary"]
    (tmp_path / "old.json").write_text(json.dumps(as_dict()))
    (tmp_path / "new.json").write_text(json.dumps(changed))
    result = vitalflow("diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"))
    assert result.returncode == 1 and "derived.age_band_summary" in result.stdout


def test_comment_text_carries_the_unit():
    weight = replace(OBSERVATION.column("value"), unit="kg")
    assert weight.comment == "value in the canonical unit [kg]"
