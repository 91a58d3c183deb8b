"""Turns raw FHIR record batches into canonical row tables, quarantine rows and filter counts."""

from __future__ import annotations

import gc
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.catalog import MEASURES
from vitalflow.refine.columnar import POSITION, ObservationColumns
from vitalflow.refine.fastpath import FastPath, Observation, decode_resource
from vitalflow.ingest.store import TRUNCATED_MARKER
from vitalflow.refine.rules import (DEFAULT_FUTURE_TOLERANCE, Rejected, latest_effective,
                                    reference_id, standardise_observation, standardise_patient)
from vitalflow.reasons import Filtered, Quarantine
from vitalflow.tables import OBSERVATION, PATIENT, QUARANTINE
from vitalflow.refine.validation import observation_contract, split_valid

__all__ = ["Standardiser", "StandardisedBatch", "reference_id", "OBSERVATION_STAGE",
           "PATIENT_STAGE", "QUARANTINE_STAGE"]

# Columns filled in after standardising: on write, and the person (vitalflow/gate.py).
_DB_COLUMNS = {"change_seq", "refined_at"}
PATIENT_STAGE = [c for c in PATIENT.columns if c.name not in _DB_COLUMNS | {"person_key"}]
OBSERVATION_STAGE = [c for c in OBSERVATION.columns if c.name not in _DB_COLUMNS | {
    "code_system_version", "mapping_equivalence", "source_coding"}]
QUARANTINE_STAGE = [c for c in QUARANTINE.columns if c.name != "quarantined_at"]


# Deepest nesting of arrays and objects a record may have (the resource itself is level 1);
# FHIR's deepest real shapes (extensions of extensions) stay far below it, and the decoders
# recurse per level, so a hostile record must be caught before either sees it.
MAX_NESTING = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


@dataclass
class StandardisedBatch:
    """The outcome of one chunk of raw records, as Arrow tables plus counts."""

    patients: pa.Table
    observations: pa.Table
    quarantine: pa.Table
    read: Counter = field(default_factory=Counter)  # resource type -> records
    filtered: Counter = field(default_factory=Counter)  # (resource type, reason) -> records
    # raw_record_id of observations parked until the terminology server can check them
    parked: list[str] = field(default_factory=list)


def standardiser_options(settings) -> tuple:
    """Standardiser's arguments from the settings (a tuple, so worker processes get them)."""
    return (settings.refine.observation_codes, settings.refine.excluded_statuses,
            settings.ingest.max_record_bytes,
            timedelta(hours=settings.refine.future_tolerance_hours))


class Standardiser:
    """Standardises raw record batches; one instance per refine run."""

    def __init__(self, observation_codes: list[str], excluded_statuses: list[str],
                 max_record_bytes: int,
                 future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE) -> None:
        unknown = [c for c in observation_codes if c not in MEASURES]
        if unknown:
            raise ValueError(f"refine.observation_codes {unknown} have no measure definition; "
                             f"known: {sorted(MEASURES)}")
        self.scope = {c: MEASURES[c] for c in observation_codes}
        self.excluded = frozenset(excluded_statuses)
        self.max_record_bytes = max_record_bytes
        self.contract = observation_contract(OBSERVATION_STAGE)
        # One instant per run, so every path judges every record against the same time.
        self.latest = latest_effective(future_tolerance)
        self.fast = FastPath(self.scope, self.excluded, self.latest)
        self.translations: dict[tuple[str, str], str] = {}

    def translating(self, translations: dict[tuple[str, str], str]) -> Standardiser:
        """A copy that also accepts codings a ConceptMap translates to an in-scope LOINC code."""
        copy = Standardiser.__new__(Standardiser)
        copy.__dict__.update(self.__dict__, translations=translations)
        return copy

    def run(self, raw: pa.RecordBatch, type_hint: str | None) -> StandardisedBatch:
        # A chunk allocates millions of small tuples and none form cycles: without this the
        # cyclic collector would take about a third of the time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(raw, type_hint)
        finally:
            if collecting:
                gc.enable()

    def _run(self, raw: pa.RecordBatch, type_hint: str | None) -> StandardisedBatch:
        ids = raw.column("raw_record_id").to_pylist()
        # As bytes: no UTF-8 decode into str objects; the decoders and the hash take bytes.
        texts = raw.column("raw_json").cast(pa.large_binary()).to_pylist()
        columns = ObservationColumns(self.scope, self.fast.statuses, self.latest)
        patients: list[tuple[int, tuple]] = []
        unusual: list[int] = []
        for position, text in enumerate(texts):
            if text is None or len(text) > self.max_record_bytes or _too_deep(text):
                unusual.append(position)
                continue
            try:
                resource = decode_resource(text)
                if type(resource) is Observation:
                    columns.add(position, resource, text)
                else:
                    patients.append((position, _with_lineage(self.fast.patient(resource)[1],
                                                             ids[position], text)))
            # Anything unusual, expected or not, goes to the full rules, which name the reason.
            except Exception:  # noqa: BLE001
                unusual.append(position)
        observations, undecided, out_of_scope = columns.rows(raw.column("raw_record_id"),
                                                             _OBSERVATION_SCHEMA)
        out = _Outcome(patients=patients)
        out.read.update({"Observation": observations.num_rows + out_of_scope,
                         "Patient": len(patients)})
        out.filtered[("Observation", str(Filtered.CODE_NOT_IN_SCOPE))] += out_of_scope
        batch_ids = raw.column("batch_id").to_pylist()
        blobs = raw.column("raw_bytes")
        for position in sorted(unusual + undecided):
            self._one(out, position, ids[position], batch_ids[position], texts[position],
                      blobs[position].as_py() if texts[position] is None else None, type_hint)
        if out.observations:
            observations = pa.concat_tables([observations, _table(
                OBSERVATION_STAGE, [row for _, row in out.observations],
                [position for position, _ in out.observations])])
            observations = observations.take(pc.sort_indices(observations.column(POSITION)))
        observations = observations.drop_columns([POSITION])
        valid, failures = split_valid(observations, self.contract)
        rejected = observations.take(pa.array([i for i, _, _ in failures], pa.int64())).select(
            ["observation_id", "raw_record_id"]).to_pylist()
        for row, (_, reason, detail) in zip(rejected, failures, strict=True):
            out.quarantined.append({"raw_record_id": row["raw_record_id"],
                                    "batch_id": row["raw_record_id"].rsplit("-", 1)[0],
                                    "resource_type": "Observation",
                                    "resource_id": row["observation_id"], "reason": str(reason),
                                    "detail": detail})
        patients = sorted(out.patients)
        return StandardisedBatch(
            _table(PATIENT_STAGE, [row for _, row in patients]), valid,
            pa.Table.from_pylist(out.quarantined, schema=_QUARANTINE_SCHEMA),
            +out.read, +out.filtered)

    def _one(self, out: _Outcome, position: int, raw_id: str, batch_id: str,
             text: bytes | None, blob: bytes | None, type_hint: str | None) -> None:
        """A record the set-wise rules left alone: the fast decoder's rules for one record,
        else the full rules, which name the quarantine or filter reason."""
        if text is not None and len(text) <= self.max_record_bytes and not _too_deep(text):
            decoded = self.fast.decode(text)
            if decoded is not None:
                kind, row = decoded
                (out.observations if kind == "Observation" else out.patients).append(
                    (position, _with_lineage(row, raw_id, text)))
                out.read[kind] += 1
                return
        resource_type, resource_id = type_hint or "unknown", None
        try:
            resource = self._parse(text, blob)
            resource_type = resource["resourceType"]
            if resource_type == "Observation":
                rid = resource.get("id")
                resource_id = rid if isinstance(rid, str) else None
                row = standardise_observation(resource, self.scope, self.excluded,
                                              self.translations, self.latest)
                out.observations.append((position, _with_lineage(row, raw_id, text)))
            elif resource_type == "Patient":
                out.patients.append((position, _with_lineage(standardise_patient(resource),
                                                             raw_id, text)))
            else:
                raise Rejected(Filtered.RESOURCE_NOT_IN_SCOPE, resource_type)
        except Rejected as rejected:
            if isinstance(rejected.reason, Filtered):
                out.filtered[(resource_type, str(rejected.reason))] += 1
            else:
                out.quarantined.append({"raw_record_id": raw_id, "batch_id": batch_id,
                                        "resource_type": resource_type,
                                        "resource_id": resource_id, "reason": str(rejected.reason),
                                        "detail": rejected.detail})
        # Whatever a rule did not foresee costs this record, never the run (the batch stays in
        # raw, so a raised error would fail every later run too). The message may quote the
        # record: only the error's type is kept.
        except Exception as exc:  # noqa: BLE001
            out.quarantined.append({"raw_record_id": raw_id, "batch_id": batch_id,
                                    "resource_type": resource_type, "resource_id": resource_id,
                                    "reason": str(Quarantine.UNPROCESSABLE_RECORD),
                                    "detail": f"{type(exc).__name__} while standardising"})
        out.read[resource_type] += 1

    def _parse(self, text: bytes | None, blob: bytes | None = None) -> dict:
        if text is None and blob and blob.startswith(TRUNCATED_MARKER):
            raise Rejected(Quarantine.TRUNCATED_FILE, "the rest of the input file could not be "
                           "read: " + blob[len(TRUNCATED_MARKER):].decode(errors="replace"))
        if text is None:
            raise Rejected(Quarantine.MALFORMED_JSON, "record is not valid UTF-8 text")
        if len(text) > self.max_record_bytes:
            raise Rejected(Quarantine.RECORD_TOO_LARGE,
                           f"record of {len(text)} bytes exceeds ingest.max_record_bytes")
        if _too_deep(text):
            raise Rejected(Quarantine.TOO_DEEPLY_NESTED,
                           f"arrays and objects nest deeper than {MAX_NESTING} levels")
        try:
            resource = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise Rejected(Quarantine.MALFORMED_JSON, f"invalid JSON: {exc.msg}") from None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise Rejected(Quarantine.NOT_A_RESOURCE, "JSON is not an object with a resourceType")
        return resource


@dataclass
class _Outcome:
    """What one chunk's records became, rows with their position in the chunk."""

    patients: list[tuple[int, tuple]] = field(default_factory=list)
    observations: list[tuple[int, tuple]] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    read: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)


def _too_deep(text: bytes) -> bool:
    """Nesting deeper than MAX_NESTING? Counting brackets (in C) settles nearly every record;
    only one with more brackets than the limit is scanned, strings removed first."""
    if text.count(b"[") + text.count(b"{") <= MAX_NESTING:
        return False
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub(b"", text)):
        depth += 1 if bracket in b"[{" else -1
        if depth > MAX_NESTING:
            return True
    return False


def _with_lineage(row: tuple, raw_record_id: str, text: bytes) -> tuple:
    return (*row, hashlib.blake2b(text, digest_size=12).hexdigest(), raw_record_id)


def _schema(columns) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type) for c in columns])


_QUARANTINE_SCHEMA = _schema(QUARANTINE_STAGE)
_OBSERVATION_SCHEMA = _schema(OBSERVATION_STAGE)


def _table(columns, rows: list[tuple], positions: list[int] | None = None) -> pa.Table:
    """Rows (tuples in column order) to an Arrow table, one column at a time; with their
    positions as a last column when given."""
    schema = _schema(columns)
    arrays = ([pa.array(values, type=field.type)
               for values, field in zip(zip(*rows), schema, strict=True)] if rows else
              [pa.array([], type=field.type) for field in schema])
    if positions is not None:
        schema = schema.append(pa.field(POSITION, pa.int64()))
        arrays.append(pa.array(positions, pa.int64()))
    return pa.Table.from_arrays(arrays, schema=schema)
