"""Raw layer: every input file becomes one immutable, content-addressed batch; nothing is lost."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import shutil
import stat
import subprocess
import sys
import textwrap
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from vitalflow.config import IngestSettings, RefineSettings
from vitalflow.ingest import IngestError
from vitalflow.ingest.parquet import ParquetRawStore, discover_inputs, resource_type_hint
from vitalflow.refine.standardise import StandardisedBatch, Standardiser

PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-05-01"}
WEIGHT = {"resourceType": "Observation", "id": "o1", "status": "final",
          "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
          "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2020-01-02T10:00:00Z",
          "valueQuantity": {"value": 70.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                            "code": "kg"}}
# Written by hand: spacing, key order and escapes must survive ingest byte for byte.
LINES = [
    '{"resourceType": "Patient",  "id": "p1", "gender": "female"}',
    '{"id":"o1","resourceType":"Observation","note":"M\\u00fcller \u00fcber \u2713"}',
    json.dumps(WEIGHT),
]


def _standardiser() -> Standardiser:
    refine = RefineSettings()
    return Standardiser(refine.observation_codes, refine.excluded_statuses,
                        IngestSettings().max_record_bytes)


def _records(store: ParquetRawStore, batch_id: str) -> list[dict]:
    return [row for part in store.read(batch_id) for row in part.to_pylist()]


def _standardise(store: ParquetRawStore, batch_id: str) -> list[StandardisedBatch]:
    batch = next(b for b in store.manifest() if b.batch_id == batch_id)
    standardiser = _standardiser()
    return [standardiser.run(part, batch.resource_type_hint) for part in store.read(batch_id)]


def _reasons(outs: list[StandardisedBatch]) -> list[str]:
    return [r for out in outs for r in out.quarantine.column("reason").to_pylist()]


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("compress", [False, True], ids=["ndjson", "ndjson.gz"])
def test_ndjson_ingest_keeps_lines_untouched_with_deterministic_ids(tmp_path, compress):
    content = ("\n".join(LINES) + "\n").encode()
    name = "Observation.ndjson.gz" if compress else "Observation.ndjson"
    source = _write(tmp_path / "in" / name,
                    gzip.compress(content, mtime=0) if compress else content)
    before = datetime.now(UTC)

    result = ParquetRawStore(tmp_path / "raw").ingest(source)

    batch = result.batch
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert result.new
    assert batch.file_sha256 == sha
    assert batch.batch_id == sha[:32]
    assert batch.size_bytes == source.stat().st_size
    assert (batch.records, batch.blank_lines, batch.format) == (3, 0, "ndjson")
    assert batch.resource_type_hint == "Observation"
    assert batch.source_uri == source.resolve().as_uri()
    assert before - timedelta(seconds=1) <= datetime.fromisoformat(batch.ingested_at) \
        <= datetime.now(UTC)
    assert batch.ingested_by
    manifest = json.loads((tmp_path / "raw" / "manifest" / f"{batch.batch_id}.json").read_text())
    assert manifest == asdict(batch)

    rows = _records(ParquetRawStore(tmp_path / "raw"), batch.batch_id)
    assert [r["raw_json"] for r in rows] == LINES
    assert [r["record_number"] for r in rows] == [1, 2, 3]
    assert [r["raw_record_id"] for r in rows] == [f"{batch.batch_id}-{n}" for n in (1, 2, 3)]
    assert {r["batch_id"] for r in rows} == {batch.batch_id}
    assert {r["source_uri"] for r in rows} == {source.resolve().as_uri()}
    assert all(r["raw_bytes"] is None for r in rows)
    # No min/max of record text in the footer: useless, costly for huge records, and PII.
    columns = pq.ParquetFile(ParquetRawStore(tmp_path / "raw").batch_path(batch.batch_id)).metadata \
        .row_group(0).to_dict()["columns"]
    assert {c["path_in_schema"]: c["statistics"] is None for c in columns} == {
        "raw_record_id": False, "batch_id": False, "source_uri": False, "record_number": False,
        "raw_json": True, "raw_bytes": True}

    # Same bytes under another name, in another store: same batch and record ids.
    copy = tmp_path / "elsewhere" / ("copy.ndjson.gz" if compress else "copy.ndjson")
    copy.parent.mkdir()
    shutil.copyfile(source, copy)
    other_store = ParquetRawStore(tmp_path / "raw2")
    other = other_store.ingest(copy).batch
    assert other.batch_id == batch.batch_id
    other_rows = _records(other_store, other.batch_id)
    assert [r["raw_record_id"] for r in other_rows] == [r["raw_record_id"] for r in rows]
    assert [r["raw_json"] for r in other_rows] == LINES
    assert {r["source_uri"] for r in other_rows} == {copy.resolve().as_uri()}


def test_reingest_is_a_no_op_and_batches_are_read_only(tmp_path):
    source = _write(tmp_path / "Patient.ndjson", (json.dumps(PATIENT) + "\n").encode())
    copy = _write(tmp_path / "renamed" / "Patient-again.ndjson", source.read_bytes())
    store = ParquetRawStore(tmp_path / "raw")

    first = store.ingest(source)
    again = store.ingest(source)
    renamed = store.ingest(copy)

    assert first.new and not again.new and not renamed.new
    assert again.batch == first.batch and renamed.batch == first.batch
    assert [p.name for p in store.batches_dir.iterdir()] == [f"{first.batch.batch_id}.parquet"]
    assert [p.name for p in store.manifest_dir.iterdir()] == [f"{first.batch.batch_id}.json"]
    assert stat.S_IMODE(store.batch_path(first.batch.batch_id).stat().st_mode) == 0o400  # owner-only: raw holds identifiers
    assert store.manifest() == [first.batch]


def test_bom_crlf_and_blank_lines_are_tolerated(tmp_path):
    patient, weight = json.dumps(PATIENT), json.dumps(WEIGHT)
    content = (b"\xef\xbb\xbf" + patient.encode() + b"\r\n"  # 1
               + b"\r\n"  # 2: empty
               + b"  \t \r\n"  # 3: whitespace only
               + weight.encode() + b"\r\n"  # 4
               + b"\n"  # 5
               + patient.replace("p1", "p2").encode())  # 6, no final newline
    store = ParquetRawStore(tmp_path / "raw")

    batch = store.ingest(_write(tmp_path / "mixed.ndjson", content)).batch

    assert (batch.records, batch.blank_lines) == (3, 3)
    rows = _records(store, batch.batch_id)
    assert [r["record_number"] for r in rows] == [1, 4, 6]
    assert [r["raw_json"] for r in rows] == [patient, weight, patient.replace("p1", "p2")]
    [out] = _standardise(store, batch.batch_id)
    assert out.quarantine.num_rows == 0
    assert out.patients.column("patient_key").to_pylist() == ["p1", "p2"]
    assert out.observations.num_rows == 1


def test_bundle_gives_one_record_per_entry(tmp_path):
    entries = [{"fullUrl": "urn:uuid:p1", "resource": PATIENT},
               {"fullUrl": "urn:uuid:o1", "resource": WEIGHT},
               {"resource": {**WEIGHT, "id": "o2"}}]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    source = _write(tmp_path / "Bundle.json",
                    b"\xef\xbb\xbf" + json.dumps(bundle, indent=2).encode())
    store = ParquetRawStore(tmp_path / "raw")

    batch = store.ingest(source).batch

    assert (batch.records, batch.format, batch.resource_type_hint) == (3, "bundle", None)
    rows = _records(store, batch.batch_id)
    assert [r["record_number"] for r in rows] == [1, 2, 3]
    assert [json.loads(r["raw_json"]) for r in rows] == [e["resource"] for e in entries]
    [out] = _standardise(store, batch.batch_id)
    assert (out.patients.num_rows, out.observations.num_rows, out.quarantine.num_rows) == (1, 2, 0)


@pytest.mark.parametrize("entry, reasons, patients", [
    ({"resource": PATIENT}, [], 1),  # an object where a list belongs
    (5, ["not_a_resource"], 0),
    ("text", ["not_a_resource"], 0),
], ids=["object", "number", "string"])
def test_malformed_bundle_entry_is_kept_as_one_record(tmp_path, entry, reasons, patients):
    source = _write(tmp_path / "b.json",
                    orjson.dumps({"resourceType": "Bundle", "entry": entry}))
    store = ParquetRawStore(tmp_path / "raw")

    batch = store.ingest(source).batch

    assert batch.records == 1
    outs = _standardise(store, batch.batch_id)
    assert _reasons(outs) == reasons
    assert sum(out.patients.num_rows for out in outs) == patients


def test_single_resource_document_is_one_untouched_record(tmp_path):
    text = json.dumps(WEIGHT, indent=2) + "\n"
    store = ParquetRawStore(tmp_path / "raw")

    batch = store.ingest(_write(tmp_path / "Observation-1.json", text.encode())).batch

    assert (batch.records, batch.format, batch.resource_type_hint) == (1, "json", "Observation")
    [row] = _records(store, batch.batch_id)
    assert (row["record_number"], row["raw_json"]) == (1, text)


@pytest.mark.parametrize("final_newline", [True, False])
def test_ndjson_named_json_is_split_into_lines(tmp_path, final_newline):
    text = json.dumps(PATIENT) + "\n" + json.dumps(WEIGHT) + ("\n" if final_newline else "")
    store = ParquetRawStore(tmp_path / "raw")

    batch = store.ingest(_write(tmp_path / "export.json", text.encode())).batch

    assert batch.records == 2
    assert [r["raw_json"] for r in _records(store, batch.batch_id)] == text.splitlines()


@pytest.mark.parametrize("name", ["Patient.ndjson", "Patient.json"])
def test_empty_file_is_a_batch_without_records(tmp_path, name):
    store = ParquetRawStore(tmp_path / "raw")

    result = store.ingest(_write(tmp_path / name, b""))

    assert result.new and result.batch.records == 0 and result.batch.size_bytes == 0
    assert pq.read_table(store.batch_path(result.batch.batch_id)).num_rows == 0
    assert _records(store, result.batch.batch_id) == []


def test_binary_file_is_kept_whole_and_quarantined(tmp_path):
    rng = random.Random(1)
    content = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(4000)
    store = ParquetRawStore(tmp_path / "raw")

    batch = store.ingest(_write(tmp_path / "Observation.ndjson", content)).batch

    assert (batch.records, batch.format) == (1, "binary")
    [row] = _records(store, batch.batch_id)
    assert (row["raw_json"], row["raw_bytes"]) == (None, content)
    [out] = _standardise(store, batch.batch_id)
    assert out.quarantine.column("reason").to_pylist() == ["malformed_json"]
    assert out.quarantine.column("resource_type").to_pylist() == ["Observation"]
    assert dict(out.read) == {"Observation": 1}


def test_binary_lines_without_nul_each_become_a_quarantined_record(tmp_path):
    rng = random.Random(2)
    lines = [bytes(rng.randrange(0x80, 0x100) for _ in range(50)) for _ in range(5)]
    store = ParquetRawStore(tmp_path / "raw")

    batch = store.ingest(_write(tmp_path / "Observation.ndjson", b"\n".join(lines))).batch

    rows = _records(store, batch.batch_id)
    assert [r["raw_bytes"] for r in rows] == lines
    assert _reasons(_standardise(store, batch.batch_id)) == ["malformed_json"] * 5


def test_non_utf8_line_is_kept_as_bytes_and_quarantined(tmp_path):
    latin1 = '{"resourceType": "Patient", "id": "p2", "name": [{"family": "Müller"}]}'.encode(
        "latin-1")
    content = json.dumps(PATIENT).encode() + b"\n" + latin1 + b"\n"
    store = ParquetRawStore(tmp_path / "raw")

    batch = store.ingest(_write(tmp_path / "Patient.ndjson", content)).batch

    rows = _records(store, batch.batch_id)
    assert rows[1]["record_number"] == 2
    assert (rows[1]["raw_json"], rows[1]["raw_bytes"]) == (None, latin1)
    [out] = _standardise(store, batch.batch_id)
    assert out.patients.num_rows == 1
    assert out.quarantine.column("reason").to_pylist() == ["malformed_json"]
    assert out.quarantine.column("raw_record_id").to_pylist() == [f"{batch.batch_id}-2"]


_HUGE_LINE_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    import pyarrow.compute as pc
    from vitalflow.config import IngestSettings, RefineSettings
    from vitalflow.ingest.parquet import ParquetRawStore
    from vitalflow.refine.standardise import Standardiser

    source, root = Path(sys.argv[1]), Path(sys.argv[2])
    refine = RefineSettings()
    standardiser = Standardiser(refine.observation_codes, refine.excluded_statuses,
                                IngestSettings().max_record_bytes)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = ParquetRawStore(root)
    batch = store.ingest(source).batch
    ingested = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sizes, reasons, patients = [], [], 0
    for part in store.read(batch.batch_id):
        sizes += pc.binary_length(part.column("raw_json")).to_pylist()
        out = standardiser.run(part, batch.resource_type_hint)
        reasons += out.quarantine.column("reason").to_pylist()
        patients += out.patients.num_rows
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"records": batch.records, "sizes": sizes, "reasons": reasons,
                      "patients": patients, "ingest_kib": ingested - baseline,
                      "total_kib": peak - baseline}))
""")


def test_50_mb_line_is_ingested_and_quarantined_as_too_large(tmp_path):
    padding = 50 * 1024 * 1024
    source = tmp_path / "Observation.ndjson"
    with source.open("wb") as handle:
        handle.write(b'{"resourceType": "Observation", "id": "big", "note": "')
        handle.write(b"x" * padding)
        handle.write(b'"}\n' + json.dumps(PATIENT).encode() + b"\n")

    # A fresh interpreter, so its peak RSS is this ingest's and not an earlier test's.
    done = subprocess.run([sys.executable, "-c", _HUGE_LINE_SCRIPT, str(source),
                           str(tmp_path / "raw")], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["records"] == 2
    assert result["sizes"][0] > padding
    assert result["reasons"] == ["record_too_large"]
    assert result["patients"] == 1
    # A few copies of the line at a time (bytes, str, Arrow, Parquet pages) are expected;
    # Parquet statistics on the record text alone used to add two more, parsing it far more.
    assert result["ingest_kib"] * 1024 < 6 * padding
    assert result["total_kib"] * 1024 < 8 * padding


def _gzip_lines(count: int) -> bytes:
    return gzip.compress(b"".join(orjson.dumps({**PATIENT, "id": f"p{i}"}) + b"\n"
                                  for i in range(count)), mtime=0)


def _flip_middle(data: bytes) -> bytes:
    damaged = bytearray(data)
    for i in range(30, 60):
        damaged[i] ^= 0xFF
    return bytes(damaged)


@pytest.mark.parametrize("damage", [
    lambda data: data[:-8] + b"\x00" * 8,  # wrong CRC and length
    lambda data: data[: len(data) // 2],  # truncated download
], ids=["bad-crc", "truncated"])
def test_damaged_gzip_keeps_its_readable_lines_and_one_truncated_record(tmp_path, damage):
    # issue 12: lines before the damage are salvaged; the rest is one record (truncated_file)
    result = ParquetRawStore(tmp_path / "raw").ingest(
        _write(tmp_path / "Patient.000.ndjson.gz", damage(_gzip_lines(2000))))

    assert result.truncated and result.batch.records <= 2001


@pytest.mark.parametrize("damage", [
    lambda data: data[:20],  # truncated before the first line
    _flip_middle,  # corrupt deflate data (zlib.error) before the first line ends
    lambda data: b"plain text, not gzip\n",
], ids=["truncated-early", "corrupt-data", "not-gzip"])
def test_corrupt_gzip_raises_ingest_error_naming_the_file(tmp_path, damage):
    source = _write(tmp_path / "Patient.000.ndjson.gz", damage(_gzip_lines(2000)))
    store = ParquetRawStore(tmp_path / "raw")

    with pytest.raises(IngestError, match=r"cannot read Patient\.000\.ndjson\.gz: "):
        store.ingest(source)

    assert store.manifest() == []
    assert list(store.batches_dir.iterdir()) == []  # no half-written batch left behind
    good = store.ingest(_write(tmp_path / "Patient.001.ndjson.gz", _gzip_lines(3)))
    assert good.new and good.batch.records == 3


def test_missing_file_raises_ingest_error(tmp_path):
    with pytest.raises(IngestError, match="nope.ndjson"):
        ParquetRawStore(tmp_path / "raw").ingest(tmp_path / "nope.ndjson")


def test_discover_inputs_picks_export_files_only(tmp_path):
    for name in ("Patient.ndjson", "Observation.ndjson.gz", "Bundle.json", "Device.jsonl",
                 "_generation.json", ".Patient.ndjson", ".partial.ndjson.gz", "notes.txt",
                 "Observation.csv", "Observation.ndjson.bak", "Patient.parquet"):
        _write(tmp_path / name, b"{}\n")
    (tmp_path / "Folder.ndjson").mkdir()

    assert [p.name for p in discover_inputs(tmp_path)] == [
        "Bundle.json", "Device.jsonl", "Observation.ndjson.gz", "Patient.ndjson"]
    assert discover_inputs(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]
    with pytest.raises(IngestError, match="does not exist"):
        discover_inputs(tmp_path / "missing")


@pytest.mark.parametrize("name, hint", [
    ("Observation.ndjson", "Observation"), ("Observation.000.ndjson.gz", "Observation"),
    ("Observation-2.ndjson", "Observation"), ("Patient_a.json", "Patient"),
    ("Bundle.json", None), ("export.ndjson", None), ("Observation", None),
])
def test_resource_type_hint(name, hint):
    assert resource_type_hint(name) == hint
