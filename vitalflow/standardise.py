"""Turns raw FHIR records into canonical Patient/Observation rows, quarantine rows and filter counts."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import orjson
import pyarrow as pa

from vitalflow.catalog import LOINC, MEASURES, UCUM, Measure, is_valid_loinc
from vitalflow.reasons import Filtered, Quarantine
from vitalflow.tables import OBSERVATION, PATIENT, QUARANTINE
from vitalflow.validation import observation_schema, split_valid

OBSERVATION_STATUSES = frozenset({"registered", "preliminary", "final", "amended", "corrected",
                                  "cancelled", "entered-in-error", "unknown"})
GENDERS = frozenset({"male", "female", "other", "unknown"})
IN_SCOPE_RESOURCES = ("Patient", "Observation")
# versionId goes into a bigint column: anything but 1 to 18 ASCII digits gives no version.
_VERSION_ID = re.compile(r"[0-9]{1,18}")
# Columns the database fills in on write.
_DB_COLUMNS = {"change_seq", "refined_at"}
PATIENT_STAGE = [c for c in PATIENT.columns if c.name not in _DB_COLUMNS]
OBSERVATION_STAGE = [c for c in OBSERVATION.columns if c.name not in _DB_COLUMNS]
QUARANTINE_STAGE = [c for c in QUARANTINE.columns if c.name != "quarantined_at"]


class Rejected(Exception):
    """A record leaves the normal path: quarantined (bad data) or filtered (out of scope)."""

    def __init__(self, reason: Quarantine | Filtered, detail: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_datetime(value: object, what: str) -> datetime:
    """A FHIR dateTime/instant precise to the day at least, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise Rejected(Quarantine.INVALID_DATE, f"{what} is not a string")
    try:
        parsed = datetime.fromisoformat(value)
        # FHIR requires a zone with a time; a date alone means that day, taken as UTC.
        # Converted here, not by Arrow: pandera sets PYARROW_IGNORE_TIMEZONE on import, which
        # makes Arrow store the local wall-clock time as if it were UTC.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: the UTC time is outside years 1..9999
        raise Rejected(Quarantine.INVALID_DATE,
                       f"{what} is not a full ISO 8601 date or date-time") from None


def parse_date(value: object, what: str) -> date:
    """A FHIR date; partial dates (YYYY, YYYY-MM) are completed to the first day."""
    if not isinstance(value, str) or not 4 <= len(value) <= 10:
        raise Rejected(Quarantine.INVALID_DATE, f"{what} is not a FHIR date")
    padded = value + "-01-01"[len(value) - 4:] if len(value) < 10 else value
    try:
        return date.fromisoformat(padded)
    except ValueError:
        raise Rejected(Quarantine.INVALID_DATE, f"{what} is not a FHIR date") from None


def reference_id(subject: object) -> str:
    """Patient id from 'Patient/<id>', 'urn:uuid:<id>' or an absolute '.../Patient/<id>' URL."""
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not reference.strip():
        raise Rejected(Quarantine.MISSING_SUBJECT, "Observation.subject.reference is missing")
    if reference.startswith("urn:uuid:") and reference[9:].strip():
        return reference[9:].strip()
    parts = reference.rstrip("/").split("/")
    if "/_history/" in reference:
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return parts[-1]
    raise Rejected(Quarantine.MISSING_SUBJECT, "Observation.subject does not reference a Patient")


def _meta(resource: dict) -> tuple[int | None, datetime | None]:
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        return None, None
    version = meta.get("versionId")
    version = int(version) if isinstance(version, str) and _VERSION_ID.fullmatch(version) else None
    try:
        updated = parse_datetime(meta["lastUpdated"], "meta.lastUpdated")
    except (KeyError, Rejected):
        updated = None
    return version, updated


def _resource_id(resource: dict) -> str:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise Rejected(Quarantine.MISSING_ID, "resource has no id")
    return rid


def standardise_patient(resource: dict) -> dict:
    gender = resource.get("gender")
    if gender is not None and (not isinstance(gender, str) or gender not in GENDERS):
        raise Rejected(Quarantine.INVALID_GENDER, "gender is not an administrative-gender code")
    birth = resource.get("birthDate")
    birth_date = parse_date(birth, "birthDate") if birth is not None else None
    if birth_date and birth_date > date.today():
        raise Rejected(Quarantine.INVALID_DATE, "birthDate is in the future")
    deceased = resource.get("deceasedDateTime")
    version, updated = _meta(resource)
    return {"patient_key": _resource_id(resource), "gender": gender, "birth_date": birth_date,
            "deceased_at": parse_datetime(deceased, "deceasedDateTime") if deceased else None,
            "version": version, "last_updated": updated}


def _measure(resource: dict, scope: dict[str, Measure]) -> tuple[Measure, str]:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list) or not codings:
        raise Rejected(Quarantine.MISSING_CODE, "Observation.code has no coding")
    loinc = [c.get("code") for c in codings if isinstance(c, dict) and c.get("system") == LOINC]
    for candidate in loinc:
        if isinstance(candidate, str) and candidate in scope:  # a list or dict is not hashable
            return scope[candidate], candidate
    if any(isinstance(c, str) and is_valid_loinc(c) for c in loinc):
        raise Rejected(Filtered.CODE_NOT_IN_SCOPE, "LOINC code not in refine.observation_codes")
    if loinc:
        raise Rejected(Quarantine.INVALID_CODE, "LOINC code fails the format or check digit")
    raise Rejected(Quarantine.UNKNOWN_CODE_SYSTEM, "no coding from LOINC")


def _effective(resource: dict) -> datetime:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if key in resource:
            return parse_datetime(resource[key], key)
    period = resource.get("effectivePeriod")
    if isinstance(period, dict) and "start" in period:
        return parse_datetime(period["start"], "effectivePeriod.start")
    raise Rejected(Quarantine.MISSING_EFFECTIVE, "no effectiveDateTime, Instant or Period.start")


def standardise_observation(resource: dict, scope: dict[str, Measure],
                            excluded_statuses: frozenset[str]) -> dict:
    observation_id = _resource_id(resource)
    status = resource.get("status")
    if not isinstance(status, str) or status not in OBSERVATION_STATUSES:
        raise Rejected(Quarantine.INVALID_STATUS, "status is not an observation-status code")
    measure, code = _measure(resource, scope)
    if status in excluded_statuses:
        raise Rejected(Filtered.STATUS_EXCLUDED, f"status {status}")
    patient_key = reference_id(resource.get("subject"))
    effective_at = _effective(resource)
    quantity = resource.get("valueQuantity")
    value = quantity.get("value") if isinstance(quantity, dict) else None
    if value is None:
        raise Rejected(Quarantine.MISSING_VALUE, "no valueQuantity.value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Rejected(Quarantine.INVALID_VALUE, "valueQuantity.value is not a finite number")
    ucum = quantity.get("code") if quantity.get("system") in (UCUM, None) else None
    source_unit = ucum or quantity.get("unit")
    canonical = measure.to_canonical(value, source_unit) if isinstance(source_unit, str) else None
    if canonical is None:
        raise Rejected(Quarantine.UNKNOWN_UNIT,
                       f"unit {str(source_unit)[:40]!r} is not convertible to {measure.unit}")
    version, updated = _meta(resource)
    return {"observation_id": observation_id, "patient_key": patient_key,
            "measure": measure.name, "code_system": LOINC, "code": code, "value": canonical,
            "unit": measure.unit, "source_value": float(value), "source_unit": source_unit,
            "effective_at": effective_at, "status": status, "version": version,
            "last_updated": updated}


@dataclass
class StandardisedBatch:
    """The outcome of one chunk of raw records, as Arrow tables plus counts."""

    patients: pa.Table
    observations: pa.Table
    quarantine: pa.Table
    read: Counter = field(default_factory=Counter)  # resource type -> records
    filtered: Counter = field(default_factory=Counter)  # (resource type, reason) -> records


class Standardiser:
    """Standardises raw record batches; one instance per refine run."""

    def __init__(self, observation_codes: list[str], excluded_statuses: list[str],
                 max_record_bytes: int) -> None:
        unknown = [c for c in observation_codes if c not in MEASURES]
        if unknown:
            raise ValueError(f"refine.observation_codes {unknown} have no measure definition; "
                             f"known: {sorted(MEASURES)}")
        self.scope = {c: MEASURES[c] for c in observation_codes}
        self.excluded = frozenset(excluded_statuses)
        self.max_record_bytes = max_record_bytes
        self.contract = observation_schema(OBSERVATION_STAGE)

    def run(self, raw: pa.RecordBatch, type_hint: str | None) -> StandardisedBatch:
        patients: list[dict] = []
        observations: list[dict] = []
        quarantined: list[dict] = []
        read: Counter = Counter()
        filtered: Counter = Counter()
        ids = raw.column("raw_record_id").to_pylist()
        batch_ids = raw.column("batch_id").to_pylist()
        texts = raw.column("raw_json").to_pylist()
        for raw_id, batch_id, text in zip(ids, batch_ids, texts, strict=True):
            resource_type, resource_id = type_hint or "unknown", None
            try:
                resource = self._parse(text)
                resource_type = resource["resourceType"]
                if resource_type == "Observation":
                    resource_id = resource.get("id") if isinstance(resource.get("id"), str) else None
                    row = standardise_observation(resource, self.scope, self.excluded)
                    observations.append(_with_lineage(row, raw_id, text))
                elif resource_type == "Patient":
                    patients.append(_with_lineage(standardise_patient(resource), raw_id, text))
                else:
                    raise Rejected(Filtered.RESOURCE_NOT_IN_SCOPE, resource_type)
            except Rejected as rejected:
                if isinstance(rejected.reason, Filtered):
                    filtered[(resource_type, str(rejected.reason))] += 1
                else:
                    quarantined.append({"raw_record_id": raw_id, "batch_id": batch_id,
                                        "resource_type": resource_type,
                                        "resource_id": resource_id, "reason": str(rejected.reason),
                                        "detail": rejected.detail})
            read[resource_type] += 1
        valid, failures = split_valid(_table(OBSERVATION_STAGE, observations), self.contract)
        for index, reason, detail in failures:
            row = observations[index]
            quarantined.append({"raw_record_id": row["raw_record_id"],
                                "batch_id": row["raw_record_id"].rsplit("-", 1)[0],
                                "resource_type": "Observation",
                                "resource_id": row["observation_id"], "reason": str(reason),
                                "detail": detail})
        return StandardisedBatch(_table(PATIENT_STAGE, patients), valid,
                                 _table(QUARANTINE_STAGE, quarantined), read, filtered)

    def _parse(self, text: str | None) -> dict:
        if text is None:
            raise Rejected(Quarantine.MALFORMED_JSON, "record is not valid UTF-8 text")
        if len(text) > self.max_record_bytes:
            raise Rejected(Quarantine.RECORD_TOO_LARGE,
                           f"record of {len(text)} characters exceeds ingest.max_record_bytes")
        try:
            resource = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise Rejected(Quarantine.MALFORMED_JSON, f"invalid JSON: {exc.msg}") from None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise Rejected(Quarantine.NOT_A_RESOURCE, "JSON is not an object with a resourceType")
        return resource


def _with_lineage(row: dict, raw_record_id: str, text: str) -> dict:
    row["content_hash"] = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    row["raw_record_id"] = raw_record_id
    return row


def _table(columns, rows: list[dict]) -> pa.Table:
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in columns])
    return pa.Table.from_pylist(rows, schema=schema)
