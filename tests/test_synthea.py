"""The real Synthea sample (../shared): all heights and weights refined, BMI as Synthea's."""

from __future__ import annotations

import psycopg
import pytest

from vitalflow import pipeline

pytestmark = [pytest.mark.postgres, pytest.mark.synthea]


@pytest.fixture
def synthea_input(synthea, tmp_path):
    folder = tmp_path / "synthea"
    folder.mkdir()
    for name in ("Patient.ndjson.gz", "Observation.ndjson.gz"):
        (folder / name).symlink_to(synthea / name)
    return folder


def test_synthea_heights_weights_and_bmi(settings, synthea_input):
    summary = pipeline.run(settings, synthea_input)
    observations = summary["counts"]["Observation"]
    assert observations["read"] == 88_674
    assert summary["counts"]["Patient"]["refined"] == 615
    assert observations["read"] == (observations["refined"] + observations["quarantined"]
                                    + observations["filtered"] + observations["duplicates"])
    with psycopg.connect(settings.database.url) as conn:
        per_code = dict(conn.execute(
            "SELECT code, count(*) FROM refined.observation GROUP BY code").fetchall())
        compared = conn.execute("""
            SELECT d.patient_key, d.bmi, o.value
              FROM derived.patient_bmi_latest d
              JOIN refined.observation o ON o.patient_key = d.patient_key
               AND o.measure = 'bmi' AND o.effective_at = d.weight_at
             WHERE d.height_at = d.weight_at""").fetchall()
    assert per_code["8302-2"] == 5_317
    assert per_code["29463-7"] == 5_317
    assert per_code["39156-5"] == 4_863
    assert len(compared) > 400, "too few patients with Synthea's own BMI to compare against"
    mismatches = [(key, ours, theirs) for key, ours, theirs in compared
                  if abs(ours - theirs) > 0.01]
    assert not mismatches
