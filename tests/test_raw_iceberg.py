"""Raw layer on Iceberg: same batches and records as the Parquet raw store, plus time travel."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from storage_backends.iceberg import IcebergBackend
from vitalflow.object_store import s3_options
from vitalflow.ingest.parquet import ParquetRawStore
from vitalflow.ingest.iceberg import RECORD, IcebergRawStore

PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}
LINES = [b'{"resourceType": "Patient",  "id": "p1"}', b'{"id":"o1","note":"M\\u00fcller \xc3\xbc"}',
         b"\xff\xfe not utf-8", b'{"resourceType":"Observation","id":"o2"}']


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> IcebergRawStore:
    if request.param == "local":
        backend = IcebergBackend(f"iceberg+sqlite:///{tmp_path}/catalog.db"
                                 f"?warehouse=file://{tmp_path}/warehouse")
    else:
        server = request.getfixturevalue("s3_server")
        backend = IcebergBackend(f"iceberg+sqlite:///{tmp_path}/catalog.db?warehouse=s3://"
                                 f"{server.bucket}/raw-{uuid.uuid4().hex[:12]}",
                                 s3=s3_options(server.root))
    yield IcebergRawStore(backend)
    backend.close()


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _rows(store, batch_id: str, **options) -> list[dict]:
    return [row for part in store.read(batch_id, **options) for row in part.to_pylist()]


def _data_files(store: IcebergRawStore) -> int:
    return len(list(store.backend.load(RECORD).scan().plan_files()))


def test_same_batches_and_records_as_the_parquet_raw_store(store, tmp_path):
    ndjson = _write(tmp_path / "in" / "Observation.ndjson.gz",
                    gzip.compress(b"\n".join(LINES) + b"\n\n", mtime=0))
    bundle = _write(tmp_path / "in" / "bundle.json", orjson.dumps(
        {"resourceType": "Bundle", "entry": [{"resource": PATIENT}, {"resource": {"id": 2}}]}))
    parquet = ParquetRawStore(tmp_path / "raw")
    for source in (ndjson, bundle):
        expected, got = parquet.ingest(source).batch, store.ingest(source).batch
        assert {**vars(got), "ingested_at": None} == {**vars(expected), "ingested_at": None}
        assert _rows(store, got.batch_id) == _rows(parquet, got.batch_id)
    assert [b.batch_id for b in store.manifest()] == [b.batch_id for b in parquet.manifest()]
    assert store.manifest()[0].records == 4 and store.manifest()[0].blank_lines == 1


def test_ingest_twice_is_once(store, tmp_path):
    source = _write(tmp_path / "Patient.ndjson", json.dumps(PATIENT).encode() + b"\n")
    copy = _write(tmp_path / "again" / "renamed.ndjson", source.read_bytes())
    first = store.ingest(source)
    again, renamed = store.ingest(source), store.ingest(copy)
    assert first.new and not again.new and not renamed.new
    assert again.batch == first.batch == renamed.batch
    assert store.manifest() == [first.batch]
    assert len(_rows(store, first.batch.batch_id)) == 1
    assert len(store.history()) == 1


def test_records_without_a_manifest_row_are_replaced_on_the_next_ingest(store, tmp_path,
                                                                        monkeypatch):
    source = _write(tmp_path / "Patient.ndjson", b"\n".join(LINES))
    with monkeypatch.context() as patch:
        patch.setattr(store.backend, "upsert", lambda *a: (_ for _ in ()).throw(OSError("crash")))
        with pytest.raises(OSError, match="crash"):
            store.ingest(source)
    assert store.manifest() == []
    batch = store.ingest(source).batch
    assert [r["record_number"] for r in _rows(store, batch.batch_id)] == [1, 2, 3, 4]


def test_history_and_reads_pinned_to_a_snapshot(store, tmp_path):
    first = store.ingest(_write(tmp_path / "a.ndjson", b"\n".join(LINES))).batch
    second = store.ingest(_write(tmp_path / "b.ndjson", LINES[0])).batch
    history = store.history()
    assert [(s.operation, s.rows) for s in history] == [("append", 4), ("append", 1)]
    assert history[0].committed_at <= history[1].committed_at
    pinned = history[0].snapshot_id
    assert len(_rows(store, first.batch_id, snapshot=pinned)) == 4
    assert _rows(store, second.batch_id, snapshot=pinned) == []
    assert len(_rows(store, second.batch_id)) == 1
    parts = list(store.read(first.batch_id, batch_rows=3))
    assert [p.num_rows for p in parts] == [3, 1]


def test_maintain_compacts_and_expires_without_changing_records(store, tmp_path):
    batches = [store.ingest(_write(tmp_path / f"{i}.ndjson", b"\n".join(LINES[:i + 1]))).batch
               for i in range(4)]
    before = {b.batch_id: _rows(store, b.batch_id) for b in batches}
    assert _data_files(store) == 4

    result = store.maintain(expire_older_than=timedelta(days=1), compact=True)
    assert (result.files_compacted, result.files_written, result.expired_snapshots) == (4, 1, 0)
    assert _data_files(store) == 1
    assert store.history()[-1].operation == "compact"
    assert {b.batch_id: _rows(store, b.batch_id) for b in batches} == before
    assert len(_rows(store, batches[3].batch_id, snapshot=store.history()[0].snapshot_id)) == 0

    result = store.maintain(expire_older_than=timedelta(0), compact=True)
    assert (result.files_compacted, result.expired_snapshots) == (0, 4 + 3)
    assert len(store.history()) == 1
    assert {b.batch_id: _rows(store, b.batch_id) for b in batches} == before
    assert store.manifest() == sorted(batches, key=lambda b: (b.ingested_at, b.batch_id))
    if store.backend.warehouse.startswith("file://"):  # the expired snapshots' files are gone
        files = list(Path(store.backend.warehouse[7:]).glob("raw/record/data/*.parquet"))
        assert len(files) == 1
