"""The local terminology server over HTTP: GET and POST, OperationOutcome errors, metadata."""

from __future__ import annotations

import httpx

from vitalflow.terminology.embedded import SubprocessServer

LOINC = "http://loinc.org"
VITALS = "http://hl7.org/fhir/ValueSet/observation-vitalsignresult"


def value(params: dict, name: str):
    for p in params["parameter"]:
        if p["name"] == name:
            return next(v for k, v in p.items() if k.startswith("value") or k == "part")
    return None


def test_get_and_post_validate_code(local_server):
    r = httpx.get(f"{local_server}/ValueSet/$validate-code",
                  params={"url": VITALS, "system": LOINC, "code": "8302-2"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    assert value(r.json(), "result") is True and value(r.json(), "display") == "Body height"
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "http://unitsofmeasure.org"},
        {"name": "code", "valueCode": "lbs"}]}
    r = httpx.post(f"{local_server}/CodeSystem/$validate-code", json=body)
    assert value(r.json(), "result") is False
    r = httpx.get(f"{local_server}/CodeSystem/$lookup", params={"system": LOINC, "code": "29463-7"})
    assert value(r.json(), "display") == "Body weight"


def test_errors_are_operation_outcomes(local_server):
    r = httpx.get(f"{local_server}/ValueSet/$validate-code",
                  params={"url": "http://nowhere/ValueSet/x", "system": LOINC, "code": "1"})
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    r = httpx.post(f"{local_server}/ValueSet/$validate-code", content=b"{not json",
                   headers={"content-type": "application/fhir+json"})
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    r = httpx.get(f"{local_server}/ValueSet/$nonsense")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"


def test_metadata(local_server):
    cap = httpx.get(f"{local_server}/metadata").json()
    assert cap["resourceType"] == "CapabilityStatement"
    caps = httpx.get(f"{local_server}/metadata", params={"mode": "terminology"}).json()
    assert caps["resourceType"] == "TerminologyCapabilities"
    assert any(cs["uri"] == LOINC for cs in caps["codeSystem"])


def test_tx_resource_and_expand(local_server):
    cs = {"resourceType": "CodeSystem", "url": "http://example.org/cs", "version": "1",
          "content": "complete", "concept": [{"code": "a", "display": "A"}]}
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "http://example.org/cs"}, {"name": "code", "valueCode": "a"},
        {"name": "tx-resource", "resource": cs}]}
    r = httpx.post(f"{local_server}/CodeSystem/$validate-code", json=body)
    assert value(r.json(), "result") is True
    r = httpx.get(f"{local_server}/ValueSet/$expand", params={"url": VITALS})
    assert r.json()["expansion"]["total"] == 13


def test_subprocess_server_and_translate():
    with SubprocessServer() as url:
        r = httpx.get(f"{url}/ConceptMap/$translate", params={
            "sourceSystem": "http://vitalflow.example.org/fhir/CodeSystem/feeder-vitals",
            "sourceCode": "HT", "targetSystem": LOINC})
        match = value(r.json(), "match")
        assert {"name": "concept", "valueCoding": {"system": LOINC, "code": "8302-2",
                                                   "display": "Body height"}} in match
