"""Runs the HL7 tx-ecosystem tests (general mode) against a terminology server and compares."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from vitalflow.terminology.compare import compare

OPERATIONS = {"validate-code": "ValueSet/$validate-code",
              "cs-validate-code": "CodeSystem/$validate-code",
              "lookup": "CodeSystem/$lookup", "translate": "ConceptMap/$translate"}


def default_tests_dir() -> Path:
    # CI clones the repository next to a `shared` folder; never an absolute path.
    return (Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
            / "tx-ecosystem" / "tests")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8-sig"))


@dataclass
class TestResult:
    suite: str
    name: str
    operation: str
    passed: bool
    differences: list[str] = field(default_factory=list)


def selected_tests(tests_dir: Path, operations=tuple(OPERATIONS)) -> list[tuple[dict, dict]]:
    """(suite, test) for each general-mode test of the given operations."""
    index = _load(tests_dir / "test-cases.json")
    out = []
    for suite in index["suites"]:
        if suite.get("mode", "general") != "general":
            continue
        for test in suite["tests"]:
            if test.get("operation") in operations and test.get("mode", "general") == "general":
                out.append((suite, test))
    return out


def build_request(tests_dir: Path, suite: dict, test: dict) -> tuple[str, dict, dict]:
    """(path, Parameters, headers): setup resources travel as tx-resource parameters."""
    body = _load(tests_dir / test["request"])
    params = list(body.get("parameter", []))
    if test.get("profile"):
        params += [p for p in _load(tests_dir / test["profile"]).get("parameter", [])
                   if p.get("name") != "uuid"]
    for setup in suite.get("setup", []):
        params.append({"name": "tx-resource", "resource": _load(tests_dir / setup)})
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if test.get("Accept-Language"):
        headers["Accept-Language"] = test["Accept-Language"]
    return OPERATIONS[test["operation"]], {"resourceType": "Parameters", "parameter": params}, \
        headers


def run_test(client: httpx.Client, tests_dir: Path, suite: dict, test: dict) -> TestResult:
    path, body, headers = build_request(tests_dir, suite, test)
    expected = _load(tests_dir / test["response"])
    result = TestResult(suite["name"], test["name"], test["operation"], False)
    try:
        response = client.post(f"/{path}", json=body, headers=headers)
        actual = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        result.differences = [f"request failed: {type(exc).__name__}: {exc}"]
        return result
    diffs = []
    want = test.get("http-code")
    if want and not str(response.status_code).startswith(want[0]):
        diffs.append(f"HTTP status {response.status_code}, expected {want}")
    elif not want and response.status_code != 200:
        diffs.append(f"HTTP status {response.status_code}, expected 200")
    diffs += compare(expected, actual)
    if diffs and test.get("response2"):
        alt = compare(_load(tests_dir / test["response2"]), actual)
        diffs = diffs if alt else []
    result.passed, result.differences = not diffs, diffs
    return result


def run(base_url: str, tests_dir: Path | None = None, only: str | None = None,
        timeout: float = 30.0) -> list[TestResult]:
    tests_dir = tests_dir or default_tests_dir()
    results = []
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for suite, test in selected_tests(tests_dir):
            if only and only not in (suite["name"], test["name"]):
                continue
            results.append(run_test(client, tests_dir, suite, test))
    return results


def summary(results: list[TestResult]) -> dict:
    suites: dict[str, dict[str, int]] = {}
    for r in results:
        s = suites.setdefault(r.suite, {"passed": 0, "failed": 0})
        s["passed" if r.passed else "failed"] += 1
    passed = sum(r.passed for r in results)
    return {"suites": suites, "passed": passed, "total": len(results),
            "pass_rate": round(passed / len(results), 4) if results else 0.0}


def report(results: list[TestResult]) -> dict:
    return {**summary(results),
            "tests": [{"suite": r.suite, "name": r.name, "operation": r.operation,
                       "passed": r.passed, "differences": r.differences} for r in results]}
