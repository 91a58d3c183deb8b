"""Issue 12, defects 7, 8 and 9: raw files owner-only, partly good input, stale partial files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from vitalflow.export import RAW_RECORD, require_administrator
from vitalflow.ingest.parquet import ParquetRawStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _ndjson(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_raw_batches_are_read_only_for_their_owner_in_owner_only_folders(tmp_path: Path):
    store = ParquetRawStore(tmp_path / "raw")
    source = _ndjson(tmp_path / "Patient.ndjson", [{"resourceType": "Patient", "id": "p1"}])

    batch = store.ingest(source).batch

    assert _mode(store.batch_path(batch.batch_id)) == 0o400
    assert _mode(store.manifest_dir / f"{batch.batch_id}.json") == 0o600
    for folder in (store.root, store.batches_dir, store.manifest_dir):
        assert _mode(folder) == 0o700, folder


def test_exporting_raw_records_is_for_the_administrator_only(tmp_path: Path):
    owner = tmp_path.stat().st_uid
    require_administrator(RAW_RECORD, tmp_path, uid=owner)  # the project's owner may
    require_administrator("derived.patient_bmi_latest", tmp_path, uid=owner + 4242)
    with pytest.raises(PermissionError, match="administrator"):
        require_administrator(RAW_RECORD, tmp_path, uid=owner + 4242)


def test_partial_files_of_killed_ingests_are_removed(tmp_path: Path):
    store = ParquetRawStore(tmp_path / "raw")
    store.batches_dir.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = store.batches_dir / f"{'a' * 32}.{gone.pid}.partial"
    stale.write_bytes(b"half a batch")
    live = store.batches_dir / f"{'b' * 32}.{os.getpid()}.partial"
    live.write_bytes(b"being written")

    store.ingest(_ndjson(tmp_path / "Patient.ndjson", [{"resourceType": "Patient", "id": "p"}]))

    assert not stale.exists() and live.exists()
