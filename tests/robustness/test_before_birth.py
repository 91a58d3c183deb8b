"""Issue 12, defect 6: an observation taken before its patient's birth is quarantined."""

from __future__ import annotations

import pytest

from tests.fhir_factory import observation, patient, write_ndjson
from vitalflow import pipeline

pytestmark = pytest.mark.postgres


def test_an_observation_before_the_birth_date_is_quarantined_with_a_reason(settings, tmp_path):
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("born-1980", birth="1980-05-01")])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        observation("early", "born-1980", "weight", 70, "1975-03-01T09:00:00Z"),
        observation("later", "born-1980", "weight", 71, "1999-03-01T09:00:00Z")])

    summary = pipeline.run(settings, tmp_path / "in")

    counts = summary["counts"]["Observation"]
    assert (counts["read"], counts["refined"], counts["quarantined"]) == (2, 1, 1)
    assert summary["quarantine_reasons"] == {"implausible_date": 1}
    assert summary["tables"]["refined.observation"] == 1
