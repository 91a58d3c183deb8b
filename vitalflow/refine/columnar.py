"""Decoded Observations standardised as columns: the rules of rules.py applied set-wise in Arrow."""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.catalog import LOINC, UCUM, Measure, is_valid_loinc, normalise_unit
from vitalflow.refine.fastpath import Observation
from vitalflow.refine.rules import OBSERVATION_STATUSES
from vitalflow.refine.timestamps import parse_timestamps

# Ids, and the id in a 'Patient/<id>' or 'urn:uuid:<id>' reference, as FHIR defines them: no
# whitespace to strip, no '/' to split on, so patient_key_of returns exactly the id.
_ID = r"^[A-Za-z0-9.\-]{1,64}$"
_REFERENCES = {"urn:uuid:": len("urn:uuid:"), "Patient/": len("Patient/")}
_VERSION_ID = r"^[0-9]{1,18}$"  # rules._VERSION_ID: what fits a bigint, else no version
_STATUSES = pa.array(sorted(OBSERVATION_STATUSES), pa.string())
POSITION = "position"  # the record's place in its chunk, to keep the rows in record order
_FIELDS = (POSITION, "observation_id", "status", "code", "other_loinc", "reference",
           "effective", "value", "unit", "system", "unit_code", "version", "updated",
           "content_hash")
_TYPES = {POSITION: pa.int64(), "value": pa.float64(), "other_loinc": pa.bool_()}


class ObservationColumns:
    """The fields of fast-decoded Observations gathered as columns (add), then standardised
    set-wise (rows).

    Only what is certain is decided here: a record whose every field has a common shape
    becomes a row; one with a plain id, a known status and only out-of-scope LOINC codes is
    counted as filtered; anything else (a blank or unusual id, an unknown unit, a reference or
    date-time of a rarer shape, ...) is handed back by position to the full per-record rules,
    which also name the quarantine or filter reason. tests/test_columnar.py checks that both
    give the same, record for record.
    """

    def __init__(self, scope: dict[str, Measure], statuses: frozenset[str],
                 latest: datetime) -> None:
        self.scope = scope
        self.statuses = statuses
        self.latest = latest  # effective times after it are the full rules' implausible_date
        self.records: list[tuple] = []  # _FIELDS of each record

    def __len__(self) -> int:
        return len(self.records)

    def add(self, position: int, obs: Observation, text: bytes) -> None:
        """One decoded record; the only per-record work besides decoding."""
        codings = obs.code.coding
        for coding in codings:  # the first in-scope LOINC coding, as rules._measure
            if coding.system == LOINC and coding.code in self.scope:
                code, other_loinc = coding.code, False
                break
        else:  # else a valid LOINC code out of scope makes rules._measure filter the record
            code, other_loinc = None, any(c.system == LOINC and c.code is not None
                                          and _valid_loinc(c.code) for c in codings)
        quantity, meta = obs.valueQuantity, obs.meta
        self.records.append((
            position, obs.id, obs.status, code, other_loinc, obs.subject.reference,
            obs.effectiveDateTime, quantity.value, quantity.unit, quantity.system, quantity.code,
            None if meta is None else meta.versionId, None if meta is None else meta.lastUpdated,
            hashlib.blake2b(text, digest_size=12).hexdigest()))

    def rows(self, raw_record_ids: pa.Array, schema: pa.Schema
             ) -> tuple[pa.Table, list[int], int]:
        """(rows in schema order plus POSITION, positions of the records left to the full
        rules, how many records rules._measure filters as code_not_in_scope)."""
        schema = schema.append(pa.field(POSITION, pa.int64()))
        if not len(self):
            return schema.empty_table(), [], 0
        f = {name: pa.array(values, _TYPES.get(name, pa.string()))
             for name, values in zip(_FIELDS, zip(*self.records), strict=True)}
        measure = pc.index_in(f["code"], value_set=pa.array(list(self.scope), pa.string()))
        source_unit = _source_unit(f["system"], f["unit_code"], f["unit"])
        factor = self._factors(f["code"], source_unit)
        patient_key = _patient_keys(f["reference"])
        effective, effective_parsed = parse_timestamps(f["effective"])
        updated, updated_parsed = parse_timestamps(f["updated"])
        plain_id = pc.match_substring_regex(f["observation_id"], _ID)
        # rules.standardise_observation checks the id and the status before the code.
        out_of_scope = _all(plain_id, pc.is_in(f["status"], value_set=_STATUSES),
                            f["other_loinc"])
        certain = _all(
            plain_id,
            pc.is_in(f["status"], value_set=pa.array(sorted(self.statuses), pa.string())),
            pc.is_valid(measure),
            pc.is_finite(f["value"]),
            pc.is_valid(factor),
            pc.is_valid(patient_key),
            effective_parsed,
            pc.less_equal(effective, pa.scalar(self.latest, effective.type)),
            # An unreadable lastUpdated gives no timestamp rather than a rejection, but which
            # strings Python reads is for parse_datetime to say.
            pc.or_(pc.is_null(f["updated"]), updated_parsed))
        measures = list(self.scope.values())
        columns = {
            "observation_id": f["observation_id"],
            "patient_key": patient_key,
            "measure": pc.take(pa.array([m.name for m in measures]), measure),
            "code_system": pa.array([LOINC] * len(f[POSITION]), pa.string()),
            "code": f["code"],
            "value": pc.multiply(f["value"], factor),
            "unit": pc.take(pa.array([m.unit for m in measures]), measure),
            "source_value": f["value"],
            "source_unit": source_unit,
            "effective_at": effective,
            "status": f["status"],
            "version": _version(f["version"]),
            "last_updated": updated,
            "content_hash": f["content_hash"],
            "raw_record_id": pc.take(raw_record_ids, f[POSITION]),
        }
        columns[POSITION] = f[POSITION]
        table = pa.table([columns[field.name] for field in schema], schema=schema)
        undecided = pc.invert(pc.or_(certain, out_of_scope))
        return (table.filter(certain), pc.filter(f[POSITION], undecided).to_pylist(),
                pc.sum(out_of_scope).as_py() or 0)

    def _factors(self, code: pa.Array, source_unit: pa.Array) -> pa.Array:
        """Measure.to_canonical's factor, looked up once per distinct (code, unit) pair; null
        where the unit does not convert."""
        # A measure code never holds the separator, so the first one splits the pair again.
        pairs = pc.binary_join_element_wise(code, source_unit, "\x1f")
        distinct = pc.unique(pairs)
        factors = []
        for pair in distinct.to_pylist():
            if pair is None:
                factors.append(None)
                continue
            code_text, unit = pair.split("\x1f", 1)
            factors.append(self.scope[code_text].factors.get(normalise_unit(unit)))
        return pc.take(pa.array(factors, pa.float64()), pc.index_in(pairs, value_set=distinct))


@functools.lru_cache(maxsize=4096)
def _valid_loinc(code: str) -> bool:
    return is_valid_loinc(code)


def _source_unit(system: pa.Array, code: pa.Array, unit: pa.Array) -> pa.Array:
    """rules.canonical_value's `(code if system in (UCUM, None) else None) or unit`."""
    ucum = pc.fill_null(pc.equal(system, UCUM), True)
    chosen = pc.and_(ucum, pc.fill_null(pc.not_equal(code, ""), False))
    return pc.if_else(chosen, code, unit)


def _patient_keys(reference: pa.Array) -> pa.Array:
    """rules.patient_key_of where the reference is one of _REFERENCES and a FHIR id; else
    null."""
    key = pa.nulls(len(reference), pa.string())
    for prefix, length in _REFERENCES.items():
        key = pc.if_else(pc.starts_with(reference, prefix),
                         pc.utf8_slice_codeunits(reference, length), key)
    return pc.if_else(pc.match_substring_regex(key, _ID), key, pa.scalar(None, pa.string()))


def _version(version: pa.Array) -> pa.Array:
    digits = pc.fill_null(pc.match_substring_regex(version, _VERSION_ID), False)
    return pc.if_else(digits, version, pa.scalar(None, pa.string())).cast(pa.int64())


def _all(*conditions: pa.Array) -> pa.Array:
    result = conditions[0]
    for condition in conditions[1:]:
        result = pc.and_(result, condition)
    return pc.fill_null(result, False)
