"""Which partition a record, a patient or a person belongs to: a stable hash of its key."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import pyarrow as pa

from vitalflow.config import Settings
from vitalflow.refine.persons import _keyer
from vitalflow.refine.rules import Rejected, patient_key_of


class _Reference(msgspec.Struct):
    reference: object = None


class _Keyed(msgspec.Struct):
    """Only what names a record's patient; every other field is skipped unread."""

    resourceType: object = None  # FHIR's name
    id: object = None
    subject: _Reference | None = None


_decode = msgspec.json.Decoder(_Keyed).decode


def bucket(key: str, count: int) -> int:
    """The partition of a key: the same on every machine and Python (unlike hash())."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def source_patient(text: str | None) -> str | None:
    """The source patient id a raw record belongs to (a Patient's id, an Observation's
    subject), as standardising would read it; None when it names none (it will be
    quarantined on its own then)."""
    if text is None:
        return None
    try:
        record = _decode(text)
        if record.resourceType == "Patient":
            return record.id if isinstance(record.id, str) and record.id.strip() else None
        if record.resourceType == "Observation" and record.subject is not None:
            return patient_key_of(record.subject.reference)
    except (msgspec.DecodeError, msgspec.ValidationError, Rejected):
        pass
    return None


@dataclass(frozen=True)
class Partition:
    """Partition index of count: refine keeps the raw records, parked observations and
    promotions of its patients (by patient_key, as refined stores it, so a patient and its
    observations always share a partition); derive keeps its persons (by person_key, so all
    records merged into one person share one)."""

    index: int
    count: int
    batches: frozenset[str] | None = None  # refine: the raw batches the run planned
    keyer: Callable[[list[str]], list[str]] = field(default=lambda ids: ids, compare=False)

    @classmethod
    def of(cls, settings: Settings, index: int, count: int,
           batches: list[str] | None = None) -> Partition:
        if not 0 <= index < count:
            raise ValueError(f"partition {index} is not in 0..{count - 1}")
        return cls(index, count, frozenset(batches) if batches is not None else None,
                   _keyer(settings))

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"

    def mask(self, keys: pa.Array | pa.ChunkedArray) -> pa.BooleanArray:
        """True for the keys (patient or person keys as stored) of this partition."""
        return pa.array([bucket(k, self.count) == self.index for k in keys.to_pylist()],
                        pa.bool_())

    def keep_keys(self, keys: pa.Array | pa.ChunkedArray) -> pa.Array:
        return pa.chunked_array([keys]).combine_chunks().filter(self.mask(keys))

    def keep_raw(self, records: pa.RecordBatch) -> pa.RecordBatch:
        """The raw records of this partition: by their patient's key as refined will store it;
        a record naming no patient goes by its own raw_record_id (it only ever makes a
        quarantine row, keyed by that id)."""
        sources = [source_patient(t) for t in records.column("raw_json").to_pylist()]
        named = [s for s in sources if s is not None]
        stored = iter(self.keyer(named) if named else [])
        ids = records.column("raw_record_id").to_pylist()
        keys = [next(stored) if s is not None else rid for s, rid in zip(sources, ids,
                                                                          strict=True)]
        return records.filter(pa.array([bucket(k, self.count) == self.index for k in keys]))
