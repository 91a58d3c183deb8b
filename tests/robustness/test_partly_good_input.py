"""Issue 12, defect 8: partly good input is salvaged, and unreadable input is visible."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from robustness.runs import accounted, vitalflow
from vitalflow.config import IngestSettings, RefineSettings
from vitalflow.ingest.parquet import ParquetRawStore, discover_inputs, skipped_inputs
from vitalflow.refine.standardise import Standardiser


def _patients(count: int) -> list[dict]:
    return [{"resourceType": "Patient", "id": f"p{i}", "gender": "female",
             "birthDate": "1970-01-01"} for i in range(count)]


def _truncated_gzip(path: Path, records: list[dict]) -> Path:
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())
    path.write_bytes(data[: len(data) * 2 // 3])  # a copy that stopped two thirds in
    return path


def _standardised(store: ParquetRawStore, batch_id: str):
    refine = RefineSettings()
    standardiser = Standardiser(refine.observation_codes, refine.excluded_statuses,
                                IngestSettings().max_record_bytes)
    return [standardiser.run(chunk, "Patient") for chunk in store.read(batch_id)]


def test_readable_lines_of_a_truncated_gzip_are_salvaged(tmp_path: Path):
    source = _truncated_gzip(tmp_path / "Patient.ndjson.gz", _patients(3000))
    store = ParquetRawStore(tmp_path / "raw")

    result = store.ingest(source)

    assert result.truncated and result.new
    outs = _standardised(store, result.batch.batch_id)
    refined = sum(o.patients.num_rows for o in outs)
    reasons = [r for o in outs for r in o.quarantine.column("reason").to_pylist()]
    assert 1000 < refined < 3000
    assert reasons == ["truncated_file"]
    assert result.batch.records == refined + 1


def test_a_json_array_on_one_line_is_read_as_its_resources(tmp_path: Path):
    (tmp_path / "Patient.ndjson").write_text(json.dumps(_patients(3)) + "\n"
                                             + json.dumps(_patients(4)[3]) + "\n")
    (tmp_path / "more.json").write_text(json.dumps(_patients(7)[4:]))
    store = ParquetRawStore(tmp_path / "raw")

    ids = []
    for path in discover_inputs(tmp_path):
        batch = store.ingest(path).batch
        ids += [json.loads(t)["id"] for chunk in store.read(batch.batch_id)
                for t in chunk.column("raw_json").to_pylist()]

    assert sorted(ids) == [f"p{i}" for i in range(7)]


def test_files_skipped_for_their_name_or_content_are_listed_with_a_hint(tmp_path: Path):
    (tmp_path / "patients.csv").write_text("id,gender\np1,female\n")
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "Patient.ndjson").write_text(json.dumps(_patients(1)[0]) + "\n")

    skipped = skipped_inputs(tmp_path)

    assert [name for name, _ in skipped] == ["notes.txt", "patients.csv"]
    assert all("FHIR" in hint for _, hint in skipped)
    assert "CSV" in dict(skipped)["patients.csv"]


@pytest.mark.postgres
def test_run_counts_unreadable_input_and_strict_fails(settings, tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    _truncated_gzip(folder / "Patient.ndjson.gz", _patients(3000))
    (folder / "Observation.ndjson.gz").write_bytes(b"\x1f\x8b not gzip at all")
    (folder / "export.csv").write_text("id\n1\n")
    env = {**__import__("os").environ, "VITALFLOW__DATABASE__URL": settings.database.url,
           "VITALFLOW__PATHS__HOME": str(settings.paths.home)}

    lenient = vitalflow(env, "run", "--input", str(folder), "--json")
    assert lenient.returncode == 0, lenient.stderr
    summary = json.loads(lenient.stdout.strip().splitlines()[-1])
    ingest = summary["ingest"]
    assert ingest["truncated"] == ["Patient.ndjson.gz"] and len(ingest["errors"]) == 1
    assert [s["file"] for s in ingest["skipped"]] == ["export.csv"]
    assert summary["quarantine_reasons"] == {"truncated_file": 1}
    assert accounted(summary) == ingest["records"]
    assert "truncated" in lenient.stderr and "not ingested" in lenient.stderr

    strict = vitalflow(env, "run", "--input", str(folder), "--strict")
    assert strict.returncode == 2 and "--strict" in strict.stderr
