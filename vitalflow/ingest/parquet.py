"""Raw layer on files: each input file becomes one immutable, content-addressed Parquet batch."""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from vitalflow import __version__
from vitalflow.ingest.store import (RAW_SCHEMA, TRUNCATED_MARKER, Batch, IngestError,
                                    IngestResult)
from vitalflow.ingest.gzip_salvage import SalvagingGzip
from vitalflow.locks import owner_only, write_private
from vitalflow.progress import Reporter, SilentReporter

INPUT_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz", ".json", ".json.gz")
_BOM = b"\xef\xbb\xbf"
_CHUNK_BYTES = 64 * 1024 * 1024
# A line longer than this keeps only its start (refine quarantines it as record_too_large):
# memory stays bounded whatever a file, or a decompressed zip bomb, holds.
MAX_LINE_BYTES = 64 * 1024 * 1024
# A .json document (Bundle, array) is parsed whole: larger ones (or zip bombs) are refused.
MAX_DOCUMENT_BYTES = 1024 * 1024 * 1024
# Entry i of a JSON array on NDJSON line n is record n * ARRAY_ENTRY_BASE + i.
ARRAY_ENTRY_BASE = 1_000_000
# Min/max of record text is useless and costs several copies of each record while writing.
_STATISTICS_COLUMNS = ["raw_record_id", "batch_id", "source_uri", "record_number"]


def discover_inputs(path: Path) -> list[Path]:
    """Input files directly in folder path (bulk-export layout) or path itself; names starting
    with '_' or '.' are skipped."""
    if not path.exists():
        raise IngestError(f"input {path} does not exist")
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(INPUT_SUFFIXES)
                  and not p.name.startswith(("_", ".")))


def skipped_inputs(path: Path) -> list[tuple[str, str]]:
    """(file name, hint) of the files in folder path that discover_inputs leaves out because of
    their name; names starting with '_' or '.' are skipped silently."""
    if not path.is_dir():
        return []
    skipped = []
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        if file.name.endswith(INPUT_SUFFIXES) or file.name.startswith(("_", ".")):
            continue
        with file.open("rb") as handle:
            head = handle.read(4096)
        first = head.split(b"\n", 1)[0]
        looks = ("CSV" if first.count(b",") + first.count(b";") + first.count(b"\t") >= 1
                 and b"{" not in first else "text" if b"\x00" not in head else "binary")
        skipped.append((file.name, f"{looks} file, not read: vitalflow reads FHIR NDJSON or JSON "
                                   f"({', '.join(INPUT_SUFFIXES)}); convert it to FHIR first"))
    return skipped


def resource_type_hint(file_name: str) -> str | None:
    """'Observation' for Observation.ndjson, Observation.000.ndjson.gz or Observation-2.ndjson."""
    match = re.match(r"([A-Z][A-Za-z]+)(?=[.\-_])", file_name)
    return match.group(1) if match and match.group(1) != "Bundle" else None


def content_id(path: Path) -> tuple[str, str]:
    """(SHA-256 of the file, batch id): the same content is the same batch whatever its name."""
    try:
        sha = file_sha256(path)
    except OSError as exc:
        raise IngestError(f"cannot read {path}: {exc.strerror}") from exc
    return sha, sha[:32]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ParquetRawStore:
    """Parquet batches and their manifest under one folder; written once, never changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.batches_dir = root / "batches"
        self.manifest_dir = root / "manifest"

    def batch_path(self, batch_id: str) -> Path:
        return self.batches_dir / f"{batch_id}.parquet"

    def manifest(self) -> list[Batch]:
        if not self.manifest_dir.exists():
            return []
        return sorted((_read_batch(p) for p in self.manifest_dir.glob("*.json")),
                      key=lambda b: (b.ingested_at, b.batch_id))

    def storage_bytes(self) -> int:
        """Bytes of every batch and manifest file."""
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def ingest(self, path: Path, reporter: Reporter | None = None,
               batch_rows: int = 100_000) -> IngestResult:
        """Copy one file into a raw batch; a file whose content was ingested before is a no-op."""
        sha, batch_id = content_id(path)
        entry = self.manifest_dir / f"{batch_id}.json"
        if entry.exists():
            return IngestResult(_read_batch(entry), False)
        # Raw records hold names, addresses and identifiers: owner-only folders, read-only files.
        for folder in (self.root, self.batches_dir, self.manifest_dir):
            owner_only(folder)
        self._remove_stale_partials()
        source_uri = path.resolve().as_uri()
        target = self.batch_path(batch_id)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        reporter = reporter or SilentReporter()
        records = 0
        reader = RecordReader(path)
        try:
            with (reporter.step(f"ingest {path.name}", path.stat().st_size) as bar,
                  pq.ParquetWriter(partial, RAW_SCHEMA, compression="zstd",
                                   write_statistics=_STATISTICS_COLUMNS) as writer):
                for chunk in reader.chunks(batch_rows):
                    numbers, texts, blobs = chunk
                    writer.write_table(raw_table(batch_id, source_uri, numbers, texts, blobs))
                    records += len(numbers)
                    bar.advance(reader.bytes_consumed_since_last())
        except BaseException:
            partial.unlink(missing_ok=True)  # a failed ingest must not leave half a batch behind
            raise
        partial.chmod(0o400)
        partial.replace(target)
        batch = Batch(batch_id, sha, path.stat().st_size, records, reader.blank_lines,
                      reader.format, resource_type_hint(path.name), source_uri,
                      datetime.now(UTC).isoformat(), who(), __version__)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        write_private(tmp, json.dumps(asdict(batch), indent=1))
        tmp.replace(entry)  # the manifest entry is the commit point of a batch
        return IngestResult(batch, True, reader.damage)

    def _remove_stale_partials(self) -> None:
        """Half-written batches of ingests that were killed (their process is gone)."""
        for partial in [*self.batches_dir.glob("*.partial"), *self.manifest_dir.glob("*.tmp")]:
            pid = partial.name.split(".")[-2]
            if pid.isdigit() and not _process_alive(int(pid)):
                partial.unlink(missing_ok=True)

    def read(self, batch_id: str, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
        return pq.ParquetFile(self.batch_path(batch_id)).iter_batches(batch_size=batch_rows)


def _read_batch(entry: Path) -> Batch:
    return Batch(**json.loads(entry.read_text()))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def who() -> str:
    """The user recorded in a manifest entry."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def raw_table(batch_id: str, source_uri: str, numbers: list[int], texts: list[str | None],
              blobs: list[bytes | None]) -> pa.Table:
    ids = [f"{batch_id}-{n}" for n in numbers]
    n = len(numbers)
    return pa.Table.from_arrays([
        pa.array(ids, pa.string()),
        pa.array([batch_id] * n, pa.string()),
        pa.array([source_uri] * n, pa.string()),
        pa.array(numbers, pa.int64()),
        pa.array(texts, pa.large_string()),
        pa.array(blobs, pa.large_binary()),
    ], schema=RAW_SCHEMA)


class RecordReader:
    """Splits an input file into records: NDJSON lines, Bundle entries or one whole document."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.blank_lines = 0
        self.format = "ndjson"
        self.damage: str | None = None  # set when the end of the file could not be read
        self._consumed = 0
        self._reported = 0

    def bytes_consumed_since_last(self) -> int:
        delta, self._reported = self._consumed - self._reported, self._consumed
        return delta

    def _open(self):
        if self.path.name.endswith(".gz"):
            return io.BufferedReader(SalvagingGzip(self.path), buffer_size=1 << 20)
        return self.path.open("rb")

    def chunks(self, batch_rows: int) -> Iterator[tuple[list[int], list, list]]:
        try:
            with self._open() as sniff:
                head = sniff.read(8192)
            with self._open() as handle:
                if b"\x00" in head:
                    self.format = "binary"  # kept (its start) as one record, to be quarantined
                    yield from self._whole(handle.read(MAX_LINE_BYTES), as_text=False)
                elif self.path.name.endswith((".json", ".json.gz")):
                    content = handle.read(MAX_DOCUMENT_BYTES + 1)
                    if len(content) > MAX_DOCUMENT_BYTES:
                        raise IngestError(f"cannot read {self.path.name}: a JSON document larger "
                                          f"than {MAX_DOCUMENT_BYTES >> 20} MiB; give it as "
                                          "NDJSON (one resource per line)")
                    if getattr(handle.raw, "damage", None):  # no document in half a document
                        raise IngestError(f"cannot read {self.path.name}: {handle.raw.damage}")
                    yield from self._document(content, batch_rows)
                else:
                    yield from self._lines(handle, batch_rows)
        except (OSError, EOFError, zlib.error) as exc:
            raise IngestError(f"cannot read {self.path.name}: {exc}") from exc
        self._consumed = self.path.stat().st_size

    def _whole(self, content: bytes, as_text: bool = True) -> Iterator[tuple[list, list, list]]:
        if not content.strip():
            return
        self._consumed = self.path.stat().st_size
        text, blob = _decode(content) if as_text else (None, content)
        yield [1], [text], [blob]

    def _document(self, content: bytes, batch_rows: int) -> Iterator[tuple[list, list, list]]:
        content = content.removeprefix(_BOM)
        try:
            document = orjson.loads(content)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, list) or (
                isinstance(document, dict) and document.get("resourceType") == "Bundle"):
            self.format = "bundle" if isinstance(document, dict) else "array"
            # Bundle entries have no text of their own: each is stored as compact JSON.
            entries = document if isinstance(document, list) else document.get("entry") or []
            if not isinstance(entries, list):
                entries = [entries]  # a malformed entry is kept as one record, to be quarantined
            for start in range(0, len(entries), batch_rows):
                part = entries[start:start + batch_rows]
                yield (list(range(start + 1, start + len(part) + 1)),
                       [orjson.dumps(e.get("resource", e) if isinstance(e, dict) else e).decode()
                        for e in part],
                       [None] * len(part))
        elif document is None and b"\n" in content.strip():  # final newline or not
            yield from self._lines(io.BytesIO(content), batch_rows)  # NDJSON named .json
        else:
            self.format = "json"
            yield from self._whole(content)

    def _lines(self, handle, batch_rows: int) -> Iterator[tuple[list, list, list]]:
        numbers: list[int] = []
        texts: list[str | None] = []
        blobs: list[bytes | None] = []
        size = 0
        number = 0
        while line := handle.readline(MAX_LINE_BYTES):
            if not line.endswith(b"\n") and getattr(getattr(handle, "raw", None), "damage", None):
                break  # the start of a line whose end was lost: part of the unreadable rest
            number += 1
            self._consumed += len(line)
            if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
                self._skip_rest_of_line(handle)
            if number == 1:
                line = line.removeprefix(_BOM)
            line = line.rstrip(b"\r\n")
            if not line.strip():
                self.blank_lines += 1
                continue
            for record_number, text, blob in _records_of_line(number, line):
                numbers.append(record_number)
                texts.append(text)
                blobs.append(blob)
            size += len(line)
            if len(numbers) >= batch_rows or size >= _CHUNK_BYTES:
                yield numbers, texts, blobs
                numbers, texts, blobs, size = [], [], [], 0
        self.damage = getattr(getattr(handle, "raw", None), "damage", None)
        if self.damage and number == 0:
            raise IngestError(f"cannot read {self.path.name}: {self.damage}")
        if self.damage:  # the unreadable rest of the file: one record, quarantined
            numbers.append(number + 1)
            texts.append(None)
            blobs.append(TRUNCATED_MARKER + self.damage.encode())
        if numbers:
            yield numbers, texts, blobs

    def _skip_rest_of_line(self, handle) -> None:
        while part := handle.readline(MAX_LINE_BYTES):
            self._consumed += len(part)
            if part.endswith(b"\n"):
                return


def _records_of_line(number: int, line: bytes) -> list[tuple[int, str | None, bytes | None]]:
    """A line's record; a JSON array of objects on one line gives one record per entry."""
    if line.lstrip()[:1] == b"[":
        try:
            entries = orjson.loads(line)
        except orjson.JSONDecodeError:
            entries = None
        if isinstance(entries, list) and entries and all(isinstance(e, dict) for e in entries):
            return [(number * ARRAY_ENTRY_BASE + index, orjson.dumps(entry).decode(), None)
                    for index, entry in enumerate(entries, start=1)]
    text, blob = _decode(line)
    return [(number, text, blob)]


def _decode(content: bytes) -> tuple[str | None, bytes | None]:
    try:
        return content.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, content

