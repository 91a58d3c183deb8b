"""`vitalflow export`: any table, from whichever backend holds it, to CSV or Parquet."""

from __future__ import annotations

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.fhir_factory import observation, patient, write_ndjson
from vitalflow import pipeline
from vitalflow.export import export_table
from vitalflow.storage import open_layers
from vitalflow.tables import PATIENT_BMI_LATEST

pytestmark = pytest.mark.postgres


@pytest.fixture
def layers(settings, tmp_path):
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1", birth="1970-01-01")])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        observation("h1", "p1", "height", 180, "2022-05-01T09:00:00Z"),
        observation("w1", "p1", "weight", 81, "2022-05-01T09:00:00Z")])
    pipeline.run(settings, tmp_path / "in")
    return open_layers(settings)


def test_parquet_keeps_the_described_schema(layers, tmp_path):
    out = tmp_path / "out" / "bmi.parquet"
    assert export_table(layers, "derived.patient_bmi_latest", out) == 1
    table = pq.read_table(out)
    assert table.schema == PATIENT_BMI_LATEST.arrow_schema
    assert table.column("bmi")[0].as_py() == pytest.approx(25.0)


def test_csv_and_raw_records(layers, tmp_path):
    assert export_table(layers, "refined.observation", tmp_path / "obs.csv") == 2
    assert pacsv.read_csv(tmp_path / "obs.csv").num_rows == 2
    assert export_table(layers, "raw.record", tmp_path / "raw.parquet") == 3


@pytest.mark.parametrize(("name", "file", "message"), [
    ("derived.nope", "x.csv", "unknown table 'derived.nope'; known: raw.record, refined.patient"),
    ("refined.patient", "x.json", "must end in .csv or .parquet"),
])
def test_bad_requests_are_explained(layers, tmp_path, name, file, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        export_table(layers, name, tmp_path / file)
    assert not list(tmp_path.glob("x.*"))


def test_snapshot_needs_an_engine_with_time_travel(layers, tmp_path):
    with pytest.raises(ValueError, match="PostgreSQL, which keeps no snapshots"):
        export_table(layers, "derived.age_band_summary", tmp_path / "x.csv", snapshot=1)
    with pytest.raises(ValueError, match="Parquet files, which keeps no snapshots"):
        export_table(layers, "raw.record", tmp_path / "x.csv", snapshot=1)
