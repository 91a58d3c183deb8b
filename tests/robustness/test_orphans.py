"""Issue 12, defect 5: an orphan observation seen in several runs leaves no stale quarantine."""

from __future__ import annotations

import pytest

from tests.conformance.profiles import profile_settings
from tests.fhir_factory import observation, patient, write_ndjson
from vitalflow import pipeline

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("profile", ["postgres", "clickhouse"])
def test_an_exact_duplicate_orphan_from_two_runs_is_promoted_without_a_stale_row(
        request, database_url, tmp_path, profile):
    orphan = observation("w1", "late", "weight", 80, "2022-02-01T09:00:00Z")
    write_ndjson(tmp_path / "one" / "Observation.ndjson", [orphan])
    write_ndjson(tmp_path / "two" / "Observation.ndjson",  # another file, the same record
                 [orphan, observation("w2", "late", "weight", 81, "2022-03-01T09:00:00Z")])
    write_ndjson(tmp_path / "three" / "Patient.ndjson", [patient("late")])

    # The conformance suite's profiles: chdb opens one data path per process.
    settings = profile_settings(profile, tmp_path / profile, database_url, request)
    counted = 0
    for folder in ("one", "two", "three"):
        summary = pipeline.run(settings, tmp_path / folder)
        counted += summary["counts"].get("Observation", {}).get("quarantined", 0)
        counted -= summary["promoted_orphans"]

    quarantined = summary["tables"]["refined.quarantine"]
    refined = summary["tables"]["refined.observation"]
    assert (quarantined, refined) == (0, 2)
    assert counted == quarantined


@pytest.mark.parametrize("profile", ["postgres", "clickhouse"])
def test_a_run_stopped_between_parking_and_quarantining_is_redone_whole(
        request, database_url, tmp_path, profile, monkeypatch):
    """Found by `vitalflow drill chaos` on the lakehouse profile: the object store killed after
    the orphans were parked but before their quarantine rows were written. Engines without one
    transaction for both keep the parked rows; the re-run must still quarantine them."""
    from vitalflow.refine.merge import Merge

    write_ndjson(tmp_path / "in" / "Observation.ndjson",
                 [observation("w1", "late", "weight", 80, "2022-02-01T09:00:00Z"),
                  observation("h1", "late", "height", 180, "2022-02-01T09:00:00Z")])
    settings = profile_settings(profile, tmp_path / profile, database_url, request)
    real = Merge._quarantine

    def object_store_gone(self, rows):
        raise ConnectionError("object store killed")

    monkeypatch.setattr(Merge, "_quarantine", object_store_gone)
    with pytest.raises(ConnectionError):
        pipeline.run(settings, tmp_path / "in")
    monkeypatch.setattr(Merge, "_quarantine", real)
    summary = pipeline.run(settings, tmp_path / "in")
    assert summary["tables"]["refined.observation_pending"] == 2
    assert summary["tables"]["refined.quarantine"] == 2
    assert summary["quarantine_reasons"] == {"unknown_patient": 2}
    assert summary["counts"]["Observation"]["quarantined"] == 2
