"""Raw layer on Iceberg: records in raw.record, the manifest in raw.batch, with time travel."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from pyiceberg import expressions as ex
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
from pyiceberg.table import Table as IcebergTable
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import IdentityTransform

from storage_backends.base import Snapshot
from storage_backends.iceberg import (TARGET_FILE_BYTES, IcebergBackend, iceberg_schema,
                                      snapshots_of, stored_bytes)
from vitalflow import __version__
from vitalflow.progress import Reporter, SilentReporter
from vitalflow.ingest import RAW_SCHEMA, Batch, IngestResult
from vitalflow.ingest.parquet import RecordReader, content_id, raw_table, resource_type_hint, who
from vitalflow.tables import RAW_BATCH, RAW_RECORD

BATCH = RAW_BATCH
RECORD = ("raw", "record")
RECORD_SCHEMA = iceberg_schema(RAW_RECORD)  # the description's docs included
# Each ingest writes files holding one batch in record order; exact batch_id bounds let reads
# and deletes of a batch pick its files from metadata alone. Text bounds would only cost space.
RECORD_PROPERTIES = {
    "comment": RAW_RECORD.comment, "owner": RAW_RECORD.owner,
    "write.target-file-size-bytes": TARGET_FILE_BYTES,
    "write.metadata.metrics.column.batch_id": "full",
    **{f"write.metadata.metrics.column.{c}": "counts"
       for c in ("raw_json", "raw_bytes", "source_uri")},
}
COMPACT_BELOW_BYTES = 8 << 20  # files smaller than this are merged by maintain()


@dataclass(frozen=True)
class MaintenanceResult:
    expired_snapshots: int
    files_compacted: int  # small files merged ...
    files_written: int  # ... into this many


class IcebergRawStore:
    """The ParquetRawStore API on Iceberg tables: same batch ids, same idempotency, plus history."""

    def __init__(self, backend: IcebergBackend) -> None:
        self.backend = backend
        backend.create(BATCH)
        self.records = backend.create_iceberg(
            *RECORD, RECORD_SCHEMA, RECORD_PROPERTIES,
            sort_order=SortOrder(SortField(2, IdentityTransform()),
                                 SortField(4, IdentityTransform())))

    def _records(self) -> IcebergTable:
        return self.backend.load(RECORD)

    def manifest(self) -> list[Batch]:
        return sorted(_batches(self.backend.read(BATCH)),
                      key=lambda b: (b.ingested_at, b.batch_id))

    def batch(self, batch_id: str) -> Batch | None:
        found = _batches(self.backend.read(BATCH, where=[("batch_id", "=", batch_id)]))
        return found[0] if found else None

    def ingest(self, path: Path, reporter: Reporter | None = None,
               batch_rows: int = 100_000) -> IngestResult:
        """Copy one file into a raw batch; a file whose content was ingested before is a no-op."""
        sha, batch_id = content_id(path)
        if (known := self.batch(batch_id)) is not None:
            return IngestResult(known, False)
        source_uri = path.resolve().as_uri()
        reader = RecordReader(path)
        records = 0
        with (self.backend.service(), (reporter or SilentReporter()).step(
                f"ingest {path.name}", path.stat().st_size) as bar):
            def parts() -> Iterator[pa.RecordBatch]:
                nonlocal records
                for numbers, texts, blobs in reader.chunks(batch_rows):
                    yield from raw_table(batch_id, source_uri, numbers, texts,
                                         blobs).to_batches()
                    records += len(numbers)
                    bar.advance(reader.bytes_consumed_since_last())

            table = self._records()
            with table.transaction() as txn:
                # Records without a manifest row are from an ingest that stopped before its
                # commit point: replaced, in the same snapshot as the new ones.
                if table.scan(row_filter=ex.EqualTo("batch_id", batch_id)).count():
                    txn.delete(ex.EqualTo("batch_id", batch_id))
                txn.append(pa.RecordBatchReader.from_batches(RAW_SCHEMA, parts()))
        batch = Batch(batch_id, sha, path.stat().st_size, records, reader.blank_lines,
                      reader.format, resource_type_hint(path.name), source_uri,
                      datetime.now(UTC).isoformat(), who(), __version__)
        self.backend.upsert(BATCH, pa.Table.from_pylist(
            [asdict(batch) | {"ingested_at": datetime.fromisoformat(batch.ingested_at)}]))
        return IngestResult(batch, True, reader.damage)

    def read(self, batch_id: str, batch_rows: int = 100_000,
             snapshot: int | None = None) -> Iterator[pa.RecordBatch]:
        """The batch's records in record order, as of snapshot (an id from history()) or now."""
        with self.backend.service():
            scan = self._records().scan(row_filter=ex.EqualTo("batch_id", batch_id),
                                        snapshot_id=snapshot)
            for part in scan.to_arrow_batch_reader():
                for start in range(0, part.num_rows, batch_rows):
                    yield part.slice(start, batch_rows).cast(RAW_SCHEMA)

    def storage_bytes(self) -> int:
        """Bytes of the record and manifest tables, including files kept for time travel."""
        with self.backend.service():
            records = stored_bytes(self._records())
        return records + self.backend.storage_bytes(BATCH)

    def history(self) -> list[Snapshot]:
        """Snapshots of raw.record, oldest first: id, commit time, operation, records added
        (compactions are 'compact' and add no records)."""
        result = []
        table = self._records()
        for snapshot in snapshots_of(table):
            summary = table.snapshot_by_id(snapshot.snapshot_id).summary
            if summary and summary.get("vitalflow.operation") == "compact":
                snapshot = Snapshot(snapshot.snapshot_id, snapshot.committed_at, "compact", 0)
            result.append(snapshot)
        return result

    def maintain(self, expire_older_than: timedelta = timedelta(days=7),
                 compact: bool = True) -> MaintenanceResult:
        """Merge small record files (one overwrite snapshot, same records), then expire
        snapshots older than expire_older_than on both tables, deleting files only they used.
        pyiceberg 0.12 has no rewrite_data_files, hence the overwrite."""
        with self.backend.service():
            merged, written = self._compact() if compact else (0, 0)
            cutoff = datetime.now(UTC) - expire_older_than
            expired = sum(_expire(self.backend.load(t), cutoff)
                          for t in (RECORD, (BATCH.layer, BATCH.name)))
        return MaintenanceResult(expired, merged, written)

    def _compact(self) -> tuple[int, int]:
        table = self._records()
        small = [t for t in table.scan().plan_files()
                 if t.file.file_size_in_bytes < COMPACT_BELOW_BYTES]
        if len(small) < 2:
            return 0, 0
        # In batch order, so merged files still hold a narrow, contiguous range of batches.
        small.sort(key=lambda t: t.file.lower_bounds[2])
        scan = ArrowScan(table.metadata, table.io, table.schema(), ex.AlwaysTrue())
        stream = pa.RecordBatchReader.from_batches(
            RAW_SCHEMA, (b.cast(RAW_SCHEMA) for b in scan.to_record_batches(small)))
        with (table.transaction() as txn,
              txn.update_snapshot({"vitalflow.operation": "compact"}).overwrite() as swap):
            for task in small:
                swap.delete_data_file(task.file)
            written = list(_dataframe_to_data_files(txn.table_metadata, stream, table.io))
            for data_file in written:
                swap.append_data_file(data_file)
        return len(small), len(written)


def _batches(rows: pa.Table) -> list[Batch]:
    return [Batch(**(row | {"ingested_at": row["ingested_at"].isoformat()}))
            for row in rows.to_pylist()]


def _expire(table: IcebergTable, cutoff: datetime) -> int:
    """Expire snapshots committed before cutoff (never the current one) and delete the files
    only they referenced: pyiceberg's expire_snapshots changes metadata only."""
    current = table.current_snapshot()
    old = [s for s in table.snapshots()
           if s.timestamp_ms < cutoff.timestamp() * 1000 and s is not current
           and (current is None or s.snapshot_id != current.snapshot_id)]
    if not old:
        return 0
    kept = [s for s in table.snapshots() if s not in old]
    live = _files(table, kept)
    table.maintenance.expire_snapshots().by_ids([s.snapshot_id for s in old]).commit()
    for path in _files(table, old) - live:
        table.io.delete(path)
    return len(old)


def _files(table: IcebergTable, snapshots: list) -> set[str]:
    """Manifest lists, manifests and data files the snapshots reference."""
    paths: set[str] = set()
    for snapshot in snapshots:
        paths.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            paths.add(manifest.manifest_path)
            paths.update(entry.data_file.file_path
                         for entry in manifest.fetch_manifest_entry(table.io))
    return paths
