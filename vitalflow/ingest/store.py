"""The raw store contract: what every raw layer (Parquet files, Iceberg) does for the pipeline.

An implementer provides four methods and keeps three promises.

- ``ingest(path, reporter=None, batch_rows=...) -> IngestResult``: copy one input file into one
  batch whose id derives from the file's SHA-256 (``content_id``); content ingested before is a
  no-op (``new=False``). Raise ``IngestError`` for input that cannot be read at all.
- ``manifest() -> list[Batch]``: the committed batches, oldest first.
- ``read(batch_id, batch_rows=...) -> Iterator[pa.RecordBatch]``: the batch's records with the
  columns of ``RAW_SCHEMA``, in record order.
- ``storage_bytes() -> int``: bytes the layer occupies.

Promises: a batch becomes visible at once or not at all (a crash leaves no half batch); a
committed batch never changes; every record keeps its text untouched (``raw_json``, or
``raw_bytes`` when it is not UTF-8) under a deterministic ``raw_record_id``
(``<batch_id>-<line or entry number>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from vitalflow.progress import Reporter

RAW_SCHEMA = pa.schema([
    pa.field("raw_record_id", pa.string(), False),
    pa.field("batch_id", pa.string(), False),
    pa.field("source_uri", pa.string(), False),
    pa.field("record_number", pa.int64(), False),  # line number (NDJSON) or entry number (Bundle)
    pa.field("raw_json", pa.large_string()),  # the record's text, untouched
    pa.field("raw_bytes", pa.large_binary()),  # only for records that are not valid UTF-8
])

# raw_bytes of the record standing for the unreadable rest of a damaged file (raw_json null):
# refine quarantines it as truncated_file. NUL never starts a line of a text file.
TRUNCATED_MARKER = b"\x00vitalflow:truncated-file\x00"


class IngestError(RuntimeError):
    """An input could not be read at all (missing, unreadable, corrupt compression)."""


@dataclass(frozen=True)
class Batch:
    """Manifest entry of one raw batch."""

    batch_id: str
    file_sha256: str
    size_bytes: int
    records: int
    blank_lines: int
    format: str
    resource_type_hint: str | None  # from a bulk-export file name such as Observation.ndjson
    source_uri: str
    ingested_at: str
    ingested_by: str
    vitalflow_version: str


@dataclass(frozen=True)
class IngestResult:
    batch: Batch
    new: bool  # False when the same content had been ingested before
    truncated: str | None = None  # why the end of the file could not be read, if it could not



class RawStore(Protocol):
    """See the module docstring for what each method promises."""

    def ingest(self, path: Path, reporter: Reporter | None = None,
               batch_rows: int = 100_000) -> IngestResult: ...

    def manifest(self) -> list[Batch]: ...

    def read(self, batch_id: str, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]: ...

    def storage_bytes(self) -> int: ...
