"""The wording of $validate-code messages, keyed by the reference servers' message ids."""

from __future__ import annotations

# Clients (and the HL7 test suite) match on this wording, so it follows tx.fhir.org exactly.
TEMPLATES = {
    "ABSTRACT_CODE_NOT_ALLOWED":
        "Code '{0}#{1}' is abstract, and not allowed in this context",
    "CODE_CASE_DIFFERENCE":
        "The code '{0}' differs from the correct code '{1}' by case. Although the code system "
        "'{2}' is case insensitive, implementers are strongly encouraged to use the correct "
        "case anyway",
    "CODESYSTEM_CS_NO_SUPPLEMENT":
        "CodeSystem {0} is a supplement, so can't be used as a value in Coding.system",
    "CONCEPT_DEPRECATED_IN_VALUESET":
        "The presence of the concept '{1}' in the system '{0}' in the value set {3} is marked "
        "with a status of {2} and its use should be reviewed",
    "Coding_has_no_system__cannot_validate":
        "Coding has no system. A code with no system has no defined meaning, and it cannot be "
        "validated. A system should be provided",
    "DEPRECATED_CONCEPT_FOUND":
        "The concept '{1}' is deprecated and its use should be reviewed",
    "Display_Name_for__should_be_one_of__instead_of_one":
        "Wrong Display Name '{4}' for {1}#{2}. Valid display is {3} (for the language(s) "
        "'{5}')",
    "Display_Name_for__should_be_one_of__instead_of_other":
        "Wrong Display Name '{4}' for {1}#{2}. Valid display is one of {0} choices: {3} (for "
        "the language(s) '{5}')",
    "Display_Name_WS_for__should_be_one_of__instead_of_one":
        "Wrong whitespace in Display Name '{4}' for {1}#{2}. Valid display is {3} (for the "
        "language(s) '{5}')",
    "Display_Name_WS_for__should_be_one_of__instead_of_other":
        "Wrong whitespace in Display Name '{4}' for {1}#{2}. Valid display is one of {0} "
        "choices: {3} (for the language(s) '{5}')",
    "INACTIVE_CONCEPT_FOUND":
        "The concept '{1}' has a status of {0} and its use should be reviewed",
    "INACTIVE_CONCEPT_FOUND_ADD":
        "The concept '{1}' has a status of {0} and {2} and its use should be reviewed",
    "INACTIVE_DISPLAY_FOUND":
        "'{0}' is no longer considered a correct display for code '{1}' (status = {3}). The "
        "correct display is one of {2}.",
    "MSG_DEPRECATED": "Reference to deprecated {2} {0}",
    "MSG_DRAFT": "Reference to draft {2} {0}",
    "MSG_EXPERIMENTAL": "Reference to experimental {2} {0}",
    "MSG_RETIRED": "Reference to retired {2} {0}",
    "MSG_WITHDRAWN": "Reference to withdrawn {2} {0}",
    "NO_VALID_DISPLAY_AT_ALL":
        "Cannot validate display Name '{0}' for {1}#{2}: No displays are known",
    "NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_ERR":
        "Wrong Display Name '{0}' for {1}#{2}. There are no valid display names found for "
        "language(s) '{3}'. Default display is '{4}'",
    "NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_OK":
        "There are no valid display names found for the code {1}#{2} for language(s) '{3}'. "
        "The display is '{0}' which is a valid display for the default language",
    "None_of_the_provided_codes_are_in_the_value_set_one":
        "The provided code {2} was not found in the value set '{1}'",
    "STATUS_CODE_WARNING_CODE": "The concept '{1}' is valid but is {0}",
    "TX_GENERAL_CC_ERROR_MESSAGE": "No valid coding was found for the value set '{0}'",
    "Terminology_TX_System_Relative":
        "Coding.system must be an absolute reference, not a local reference",
    "Terminology_TX_System_ValueSet2":
        "The Coding references a value set, not a code system ('{0}')",
    "UNABLE_TO_HANDLE_SYSTEM_FILTER_WITH_NO_VALUE":
        "The system {0} filter with property = {1}, op = {2} has no value",
    "UNABLE_TO_INFER_CODESYSTEM":
        "The System URI could not be determined for the code '{0}' in the ValueSet '{1}'",
    "UNKNOWN_CODESYSTEM":
        "A definition for CodeSystem '{0}' could not be found, so the code cannot be validated",
    "UNKNOWN_CODESYSTEM_VERSION":
        "A definition for CodeSystem '{0}' version '{1}' could not be found, so the code cannot "
        "be validated. Valid versions: {2}",
    "UNKNOWN_CODESYSTEM_VERSION_NONE":
        "A definition for CodeSystem '{0}' version '{1}' could not be found, so the code cannot "
        "be validated. No versions of this code system are known",
    "UNKNOWN_CODE_IN_FRAGMENT":
        "Unknown Code '{0}' in the CodeSystem '{1}' version '{2}' - note that the code system "
        "is labeled as a fragment, so the code may be valid in some other fragment",
    "Unable_to_resolve_system__value_set_has_multiple_matches":
        "The System URI could not be determined for the code '{0}' in the ValueSet '{1}': value "
        "set expansion has multiple matches: [{2}]",
    "Unable_to_resolve_value_Set_": "A definition for the value Set '{0}' could not be found",
    "Unknown_Code_in": "Unknown code '{0}' in the CodeSystem '{1}'",
    "Unknown_Code_in_Version": "Unknown code '{0}' in the CodeSystem '{1}' version '{2}'",
    "VALUESET_SUPPLEMENT_MISSING": "Required supplement not found: {0}",
    "VALUESET_VALUE_MISMATCH":
        "The code system '{0}' version '{1}' in the ValueSet include is different to the one in "
        "the value ('{2}')",
    "VALUESET_VALUE_MISMATCH_CHANGED":
        "The code system '{0}' version '{1}' resulting from the version '{2}' in the ValueSet "
        "include is different to the one in the value ('{3}')",
    "VALUESET_VALUE_MISMATCH_DEFAULT":
        "The code system '{0}' version '{1}' for the versionless include in the ValueSet "
        "include is different to the one in the value ('{3}')",
    "VALUESET_VERSION_CHECK":
        "The version '{1}' is not allowed for system '{0}': required to be '{2}' by a "
        "version-check parameter",
}


def text(message_id: str, *args) -> str:
    """The message for an id, with its arguments filled in (None shows as empty)."""
    return TEMPLATES[message_id].format(*("" if a is None else a for a in args))


def version_list(versions: list[str]) -> str:
    """'a', 'a or b', 'a, b and c': how the reference servers list known versions."""
    if len(versions) <= 2:
        return " or ".join(versions)
    return ", ".join(versions[:-1]) + " and " + versions[-1]
