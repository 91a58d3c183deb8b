"""Small builders of FHIR resources and NDJSON files for tests."""

from __future__ import annotations

import json
from pathlib import Path

CODES = {"height": ("8302-2", "cm"), "weight": ("29463-7", "kg"), "bmi": ("39156-5", "kg/m2")}


def patient(pid: str, birth: str = "1980-05-01", gender: str = "female",
            version: int | None = None) -> dict:
    resource = {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth,
                "name": [{"family": "Testperson", "given": ["Alex"]}]}
    if version is not None:
        resource["meta"] = {"versionId": str(version)}
    return resource


def observation(oid: str, pid: str, kind: str, value: float, when: str,
                unit: str | None = None, version: int | None = None,
                status: str = "final") -> dict:
    code, canonical = CODES[kind]
    resource = {
        "resourceType": "Observation", "id": oid, "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit or canonical,
                          "system": "http://unitsofmeasure.org", "code": unit or canonical},
    }
    if version is not None:
        resource["meta"] = {"versionId": str(version)}
    return resource


def write_ndjson(path: Path, resources: list[dict | str]) -> Path:
    """Write resources (dicts, or raw strings for broken lines) one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in resources]
    path.write_text("\n".join(lines) + "\n")
    return path


def patient_key(source_id: str) -> str:
    """The refined patient_key of a source Patient.id under the test session's key."""
    import os

    from vitalflow.privacy.keys import KEY_ENV, key_from_text
    from vitalflow.privacy.pseudonym import pseudonym

    return pseudonym(key_from_text(os.environ[KEY_ENV], "test"), "fhir", source_id)
