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
    IMPLAUSIBLE_DATE = "implausible_date"  # effective time after now + refine.future_tolerance_hours
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
