"""The terminology step of refine, against the local terminology server over HTTP: feeder
codes translated to LOINC, codes outside the value set quarantined with the server's message,
and nothing refined while the server is down, until it is back."""

from __future__ import annotations

import psycopg
import pytest

from tests.fhir_factory import observation, patient, write_ndjson
from vitalflow import pipeline
from vitalflow.services import free_port

pytestmark = pytest.mark.postgres
FEEDER = "http://vitalflow.example.org/fhir/CodeSystem/feeder-vitals"


def _feeder(oid: str, pid: str, code: str, value: float, unit: str) -> dict:
    resource = observation(oid, pid, "weight", value, "2022-05-01T09:00:00Z", unit=unit)
    resource["code"] = {"coding": [{"system": FEEDER, "code": code}]}
    return resource


def test_feeder_codes_are_translated_and_recorded(settings, tmp_path):
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1", birth="1970-01-01")])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        _feeder("f1", "p1", "WT", 80, "kg"), _feeder("f2", "p1", "HT", 180, "cm"),
        _feeder("f3", "p1", "NOPE", 1, "kg"),
        observation("l1", "p1", "weight", 81, "2022-06-01T09:00:00Z")])
    summary = pipeline.run(settings, tmp_path / "in")
    assert summary["counts"]["Observation"] == {"read": 4, "refined": 3, "quarantined": 1,
                                               "filtered": 0, "duplicates": 0, "pending": 0}
    assert summary["quarantine_reasons"] == {"unknown_code_system": 1}
    assert summary["terminology"]["records"] == {"valid": 1, "mapped": 2, "invalid": 0,
                                                   "pending": 0}
    with psycopg.connect(settings.database.url) as conn:
        rows = conn.execute("SELECT observation_id, code, code_system_version, "
                            "mapping_equivalence, source_coding FROM refined.observation "
                            "ORDER BY 1").fetchall()
    version = rows[0][2]
    assert version
    assert rows == [("f1", "29463-7", version, "equivalent", f"{FEEDER}|WT"),
                    ("f2", "8302-2", version, "equivalent", f"{FEEDER}|HT"),
                    ("l1", "29463-7", version, None, None)]


def test_codes_outside_the_value_set_are_quarantined_with_the_servers_message(settings,
                                                                            tmp_path):
    settings.terminology.value_set = "http://hl7.org/fhir/ValueSet/ucum-bodyweight"
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1")])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        observation("w1", "p1", "weight", 80, "2022-05-01T09:00:00Z")])
    summary = pipeline.run(settings, tmp_path / "in")
    assert summary["quarantine_reasons"] == {"terminology_rejected": 1}
    with psycopg.connect(settings.database.url) as conn:
        (detail,) = conn.execute("SELECT detail FROM refined.quarantine").fetchone()
    assert detail and "29463-7" in detail


def test_observations_wait_while_the_server_is_down_and_are_refined_once_it_is_back(
        settings, tmp_path):
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1")])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        observation("w1", "p1", "weight", 80, "2022-05-01T09:00:00Z"),
        _feeder("f1", "p1", "WT", 81, "kg")])
    settings.terminology.base_url = f"http://127.0.0.1:{free_port()}"
    settings.terminology.retries = 0
    down = pipeline.run(settings, tmp_path / "in")
    assert down["counts"]["Observation"] == {"read": 2, "refined": 0, "quarantined": 0,
                                            "filtered": 0, "duplicates": 0, "pending": 2}
    assert down["counts"]["Patient"]["refined"] == 1  # patients need no terminology
    assert down["terminology"]["records"]["pending"] == 2
    with psycopg.connect(settings.database.url) as conn:
        assert conn.execute("SELECT count(*) FROM refined.observation").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM meta.terminology_pending").fetchone() == (2,)
    still_down = pipeline.run(settings, tmp_path / "in")
    assert still_down["counts"]["Observation"]["pending"] == 2
    settings.terminology.base_url = ""
    back = pipeline.run(settings, tmp_path / "in")
    assert back["counts"]["Observation"] == {"read": 2, "refined": 2, "quarantined": 0,
                                            "filtered": 0, "duplicates": 0, "pending": 0}
    assert back["tables"]["derived.patient_bmi_latest"] == 1
    with psycopg.connect(settings.database.url) as conn:
        assert conn.execute("SELECT count(*) FROM meta.terminology_pending").fetchone() == (0,)
