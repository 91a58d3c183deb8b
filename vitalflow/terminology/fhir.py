"""FHIR Parameters and OperationOutcome helpers shared by the server, client and runner."""

from __future__ import annotations

from typing import Any

MESSAGE_ID_URL = "http://hl7.org/fhir/StructureDefinition/operationoutcome-message-id"
TX_ISSUE_TYPE = "http://hl7.org/fhir/tools/CodeSystem/tx-issue-type"

# The value[x] names a Parameters.parameter may carry; the first present one is its value.
_VALUE_KEYS = ("valueString", "valueCode", "valueUri", "valueCanonical", "valueUrl",
               "valueBoolean", "valueCoding", "valueCodeableConcept", "valueInteger",
               "valueDateTime", "valueDate", "valueUuid", "valueId", "valueDecimal",
               "valueMarkdown", "valueInstant", "valueOid")


def param_value(p: dict) -> Any:
    """The value of one Parameters.parameter (value[x] or resource), or None."""
    if "resource" in p:
        return p["resource"]
    for key in _VALUE_KEYS:
        if key in p:
            return p[key]
    for key, value in p.items():
        if key.startswith("value"):
            return value
    return None


def params_to_multi(params: dict | None) -> dict[str, list]:
    """Parameters resource as name -> list of values (repeated names keep their order)."""
    out: dict[str, list] = {}
    for p in (params or {}).get("parameter", []) or []:
        if isinstance(p, dict) and "name" in p:
            value = param_value(p) if "part" not in p else p
            out.setdefault(p["name"], []).append(value)
    return out


def parameters(*pairs: tuple[str, str, Any]) -> dict:
    """Build Parameters from (name, value-type, value) triples, skipping None values."""
    out = []
    for name, kind, value in pairs:
        if value is None:
            continue
        if kind == "resource":
            out.append({"name": name, "resource": value})
        elif kind == "part":
            out.append({"name": name, "part": value})
        else:
            out.append({"name": name, kind: value})
    return {"resourceType": "Parameters", "parameter": out}


_NO_LOCATION = {"None_of_the_provided_codes_are_in_the_value_set_one", "Unknown_Code_in_Version"}


def issue(severity: str, code: str, text: str, *, tx_type: str | None = None,
          message_id: str | None = None, expression: str | None = None) -> dict:
    """One OperationOutcome.issue in the shape terminology servers return."""
    out: dict[str, Any] = {}
    if message_id:
        out["extension"] = [{"url": MESSAGE_ID_URL, "valueString": message_id}]
    out["severity"] = severity
    out["code"] = code
    details: dict[str, Any] = {}
    if tx_type:
        details["coding"] = [{"system": TX_ISSUE_TYPE, "code": tx_type}]
    details["text"] = text
    out["details"] = details
    if expression:
        # `location` is deprecated in R5; the reference servers no longer send it for these.
        if message_id not in _NO_LOCATION:
            out["location"] = [expression]
        out["expression"] = [expression]
    return out


def outcome(*issues: dict) -> dict:
    """An OperationOutcome resource holding the given issues."""
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def outcome_text(oo: dict) -> str:
    """The human-readable messages of an OperationOutcome, joined."""
    texts = []
    for i in oo.get("issue", []) or []:
        text = (i.get("details") or {}).get("text") or i.get("diagnostics")
        if text:
            texts.append(str(text))
    return "; ".join(texts)


class FhirError(Exception):
    """An operation failure returned as an OperationOutcome with an HTTP status."""

    def __init__(self, status: int, issues: list[dict]):
        super().__init__(outcome_text({"issue": issues}))
        self.status = status
        self.issues = issues

    def resource(self) -> dict:
        return outcome(*self.issues)
