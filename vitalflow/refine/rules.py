"""The rules that turn one FHIR resource into a canonical row, or reject it with a reason."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

from vitalflow.catalog import LOINC, UCUM, Measure, is_valid_loinc
from vitalflow.reasons import Filtered, Quarantine

OBSERVATION_STATUSES = frozenset({"registered", "preliminary", "final", "amended", "corrected",
                                  "cancelled", "entered-in-error", "unknown"})
GENDERS = frozenset({"male", "female", "other", "unknown"})
# How far past the current time an effective time may lie (clock skew between systems);
# refine.future_tolerance_hours overrides it.
DEFAULT_FUTURE_TOLERANCE = timedelta(hours=24)
# versionId goes into a bigint column: anything but 1 to 18 ASCII digits gives no version.
_VERSION_ID = re.compile(r"[0-9]{1,18}")


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


def latest_effective(tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE) -> datetime:
    """The latest plausible effective time: now plus the tolerance."""
    return datetime.now(UTC) + tolerance


def check_not_future(effective: datetime, latest: datetime) -> datetime:
    """A measurement cannot have been taken in the future (9999-12-31 would become the
    patient's latest weight for ever)."""
    if effective > latest:
        raise Rejected(Quarantine.IMPLAUSIBLE_DATE,
                       "effective time is later than now + refine.future_tolerance_hours")
    return effective


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
    """Patient id of an Observation.subject (see patient_key_of)."""
    return patient_key_of(subject.get("reference") if isinstance(subject, dict) else None)


def patient_key_of(reference: object) -> str:
    """Patient id from 'Patient/<id>', 'urn:uuid:<id>' or an absolute '.../Patient/<id>' URL."""
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
    return meta_values(meta.get("versionId"), meta.get("lastUpdated"))


def meta_values(version: object, updated: object) -> tuple[int | None, datetime | None]:
    """versionId and lastUpdated; unusable values give None rather than a rejection."""
    number = int(version) if isinstance(version, str) and _VERSION_ID.fullmatch(version) else None
    try:
        stamp = parse_datetime(updated, "meta.lastUpdated") if updated is not None else None
    except Rejected:
        stamp = None
    return number, stamp


def _valid_id(rid: object) -> str:
    if not isinstance(rid, str) or not rid.strip():
        raise Rejected(Quarantine.MISSING_ID, "resource has no id")
    return rid


def _resource_id(resource: dict) -> str:
    return _valid_id(resource.get("id"))


def standardise_patient(resource: dict) -> tuple:
    """A row in PATIENT_STAGE order, without the lineage columns."""
    return patient_row(resource.get("id"), resource.get("gender"), resource.get("birthDate"),
                       resource.get("deceasedDateTime"), *_meta(resource))


def patient_row(rid: object, gender: object, birth: object, deceased: object,
                version: int | None, updated: datetime | None) -> tuple:
    """Checks a Patient's fields and returns its row; shared by both decoders."""
    if gender is not None and (not isinstance(gender, str) or gender not in GENDERS):
        raise Rejected(Quarantine.INVALID_GENDER, "gender is not an administrative-gender code")
    birth_date = parse_date(birth, "birthDate") if birth is not None else None
    if birth_date and birth_date > date.today():
        raise Rejected(Quarantine.INVALID_DATE, "birthDate is in the future")
    return (_valid_id(rid), gender, birth_date,
            parse_datetime(deceased, "deceasedDateTime") if deceased else None, version, updated)


def _measure(resource: dict, scope: dict[str, Measure],
             translations: dict[tuple[str, str], str]) -> tuple[Measure, str]:
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
    for c in codings:  # a feeder system's code that a ConceptMap translates to LOINC
        source = (c.get("system"), c.get("code")) if isinstance(c, dict) else None
        if source and all(isinstance(part, str) for part in source) and source in translations:
            target = translations[source]
            if target in scope:
                return scope[target], target
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
                            excluded_statuses: frozenset[str],
                            translations: dict[tuple[str, str], str] | None = None,
                            latest: datetime | None = None) -> tuple:
    """A row in OBSERVATION_STAGE order, without the lineage columns; effective times after
    latest (default: latest_effective()) are implausible."""
    observation_id = _resource_id(resource)
    status = resource.get("status")
    if not isinstance(status, str) or status not in OBSERVATION_STATUSES:
        raise Rejected(Quarantine.INVALID_STATUS, "status is not an observation-status code")
    measure, code = _measure(resource, scope, translations or {})
    if status in excluded_statuses:
        raise Rejected(Filtered.STATUS_EXCLUDED, f"status {status}")
    patient_key = reference_id(resource.get("subject"))
    effective_at = check_not_future(_effective(resource), latest or latest_effective())
    quantity = resource.get("valueQuantity")
    if not isinstance(quantity, dict):
        quantity = {}
    canonical, source_unit = canonical_value(measure, quantity.get("value"),
                                             quantity.get("system"), quantity.get("code"),
                                             quantity.get("unit"))
    version, updated = _meta(resource)
    return (observation_id, patient_key, measure.name, LOINC, code, canonical, measure.unit,
            float(quantity["value"]), source_unit, effective_at, status, version, updated)


def canonical_value(measure: Measure, value: object, system: object, code: object,
                    unit: object) -> tuple[float, str]:
    """The value in the measure's canonical unit, and the unit it came in; shared by both
    decoders. The UCUM code is preferred; the free-text unit is the fallback."""
    if value is None:
        raise Rejected(Quarantine.MISSING_VALUE, "no valueQuantity.value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Rejected(Quarantine.INVALID_VALUE, "valueQuantity.value is not a finite number")
    source_unit = (code if system in (UCUM, None) else None) or unit
    canonical = measure.to_canonical(value, source_unit) if isinstance(source_unit, str) else None
    if canonical is None:
        raise Rejected(Quarantine.UNKNOWN_UNIT,
                       f"unit {str(source_unit)[:40]!r} is not convertible to {measure.unit}")
    return canonical, source_unit
