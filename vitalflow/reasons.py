"""Machine-readable outcome codes for records that do not reach the refined layer."""

from enum import StrEnum


class Quarantine(StrEnum):
    """Why a record was quarantined: it is bad data that someone must look at."""

    MALFORMED_JSON = "malformed_json"  # line or entry is not a JSON object
    NOT_A_RESOURCE = "not_a_resource"  # JSON without a usable resourceType
    MISSING_ID = "missing_id"
    MISSING_SUBJECT = "missing_subject"
    UNKNOWN_PATIENT = "unknown_patient"  # orphan: subject not (yet) in refined.patient
    MISSING_CODE = "missing_code"
    INVALID_CODE = "invalid_code"  # LOINC code with a wrong check digit or shape
    UNKNOWN_CODE_SYSTEM = "unknown_code_system"  # no coding from a known system
    MISSING_VALUE = "missing_value"
    INVALID_VALUE = "invalid_value"  # value is not a finite number
    UNKNOWN_UNIT = "unknown_unit"  # unit not convertible to the canonical one
    OUT_OF_RANGE = "out_of_range"  # physiologically impossible after conversion
    MISSING_EFFECTIVE = "missing_effective"
    INVALID_DATE = "invalid_date"
    IMPLAUSIBLE_DATE = "implausible_date"  # after now + tolerance, or before the birth date
    INVALID_STATUS = "invalid_status"
    INVALID_GENDER = "invalid_gender"
    RECORD_TOO_LARGE = "record_too_large"
    TOO_DEEPLY_NESTED = "too_deeply_nested"  # arrays/objects deeper than standardise.MAX_NESTING
    TRUNCATED_FILE = "truncated_file"  # the unreadable rest of a damaged file (one record)
    UNPROCESSABLE_RECORD = "unprocessable_record"  # a rule failed unexpectedly; detail: error type
    SCHEMA_VIOLATION = "schema_violation"  # caught by the pandera contract
    TERMINOLOGY_REJECTED = "terminology_rejected"  # the terminology server said no; detail why


class Filtered(StrEnum):
    """Why a valid record was deliberately left out of refined."""

    CODE_NOT_IN_SCOPE = "code_not_in_scope"
    STATUS_EXCLUDED = "status_excluded"
    RESOURCE_NOT_IN_SCOPE = "resource_type_not_in_scope"


# What each code means to someone reading refined.quarantine or a run summary.
DESCRIPTIONS: dict[str, str] = {
    Quarantine.MALFORMED_JSON: "The line or Bundle entry is not a JSON object.",
    Quarantine.NOT_A_RESOURCE: "JSON without a usable resourceType.",
    Quarantine.MISSING_ID: "The resource has no id.",
    Quarantine.MISSING_SUBJECT: "The Observation has no subject reference.",
    Quarantine.UNKNOWN_PATIENT: "Orphan: the Observation's patient is not (yet) in "
    "refined.patient. It waits in refined.observation_pending and is promoted, and this row "
    "removed, when the patient arrives.",
    Quarantine.MISSING_CODE: "The Observation has no code.coding.",
    Quarantine.INVALID_CODE: "A LOINC code with a wrong check digit or shape.",
    Quarantine.UNKNOWN_CODE_SYSTEM: "No coding from a known code system (LOINC, or a feeder "
    "system with a ConceptMap to LOINC).",
    Quarantine.MISSING_VALUE: "The Observation has no valueQuantity.value.",
    Quarantine.INVALID_VALUE: "The value is not a finite number.",
    Quarantine.UNKNOWN_UNIT: "The unit cannot be converted to the measure's canonical UCUM unit.",
    Quarantine.OUT_OF_RANGE: "Physiologically impossible after conversion to the canonical "
    "unit (vitalflow.catalog ranges).",
    Quarantine.MISSING_EFFECTIVE: "No effectiveDateTime, effectiveInstant or "
    "effectivePeriod.start.",
    Quarantine.INVALID_DATE: "A date or time that cannot be read, or a birth date in the future.",
    Quarantine.IMPLAUSIBLE_DATE: "The effective time is later than now plus "
    "refine.future_tolerance_hours, or before the patient's birth date as refined (generalised "
    "to the year by default): a measurement cannot come from the future or before birth.",
    Quarantine.INVALID_STATUS: "Observation.status is not an observation-status code.",
    Quarantine.INVALID_GENDER: "Patient.gender is not an administrative-gender code.",
    Quarantine.RECORD_TOO_LARGE: "The record is larger than the pipeline accepts.",
    Quarantine.TOO_DEEPLY_NESTED: "Arrays or objects nested deeper than the limit "
    "(standardise.MAX_NESTING): quarantined before any decoder reads it.",
    Quarantine.TRUNCATED_FILE: "The unreadable rest of a damaged or truncated file, as one "
    "record; the readable lines before it were kept.",
    Quarantine.UNPROCESSABLE_RECORD: "A rule failed unexpectedly on this record; the detail "
    "names the error type only. Please report it.",
    Quarantine.SCHEMA_VIOLATION: "The standardised row broke the pandera contract built from "
    "vitalflow/tables.py (types, canonical units, ranges).",
    Quarantine.TERMINOLOGY_REJECTED: "The terminology server rejected the code or unit; the "
    "detail carries its message.",
    Filtered.CODE_NOT_IN_SCOPE: "A valid Observation whose LOINC code is not one of "
    "refine.observation_codes.",
    Filtered.STATUS_EXCLUDED: "A valid Observation whose status is in refine.excluded_statuses.",
    Filtered.RESOURCE_NOT_IN_SCOPE: "A valid resource of a type vitalflow does not refine.",
}
