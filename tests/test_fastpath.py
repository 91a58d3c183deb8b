"""The fast decoder returns exactly the rows of the full rules, and only for records they accept
(generated records always; Synthea's when ../shared is present)."""

from __future__ import annotations

import gzip
from itertools import islice
from pathlib import Path

import orjson
import pytest

from vitalflow.catalog import MEASURES
from vitalflow.refine.fastpath import FastPath
from vitalflow.refine.rules import Rejected, standardise_observation, standardise_patient
from vitalflow.generate import generate

SCOPE = dict(MEASURES)
EXCLUDED = frozenset({"entered-in-error", "cancelled"})


def full_rules(line: bytes) -> tuple[str, tuple] | None:
    try:
        resource = orjson.loads(line)
        if resource.get("resourceType") == "Observation":
            return "Observation", standardise_observation(resource, SCOPE, EXCLUDED)
        if resource.get("resourceType") == "Patient":
            return "Patient", standardise_patient(resource)
    except (orjson.JSONDecodeError, Rejected, AttributeError):
        pass
    return None


def generated_lines(tmp_path: Path) -> list[bytes]:
    generate(tmp_path, 150, seed=11, defect_rate=0.3)
    found = [line for name in ("Patient.ndjson", "Observation.ndjson")
             for line in (tmp_path / name).read_bytes().splitlines()]
    found += [b'{"resourceType":"Observation","id":"x","status":"final","code":{"coding":'
              b'[{"system":"http://loinc.org","code":"8302-2"}]},"subject":{"reference":'
              b'"Patient/p/_history/3"},"effectiveDateTime":"2020-01-01",'
              b'"valueQuantity":{"value":true,"unit":"cm"}}',
              b'{"resourceType":"Patient","id":" ","gender":"female"}',
              b'{"resourceType":"Patient","id":"p","birthDate":""}']
    return found


def assert_fast_rows_equal_full_rule_rows(lines: list[bytes], at_least: int) -> None:
    fast = FastPath(SCOPE, EXCLUDED)
    decoded = 0
    for line in lines:
        row = fast.decode(line)
        if row is not None:
            decoded += 1
            assert row == full_rules(line), line[:200]
    assert decoded >= at_least, "the fast path should take the common shapes"


def test_fast_rows_equal_full_rule_rows(tmp_path):
    assert_fast_rows_equal_full_rule_rows(generated_lines(tmp_path), at_least=3_000)


def test_fast_rows_equal_full_rule_rows_on_synthea(synthea):
    lines = []
    for name in ("Patient.ndjson.gz", "Observation.ndjson.gz"):
        with gzip.open(synthea / name) as handle:
            lines += [line.rstrip(b"\n") for line in islice(handle, 20_000)]
    assert_fast_rows_equal_full_rule_rows(lines, at_least=4_000)


@pytest.mark.parametrize("line", [
    b'{"resourceType":"Observation","id":"x","status":"final","code":{"coding":[{"system":'
    b'"http://loinc.org","code":"8302-2"}]},"subject":{"reference":"Patient/p"},'
    b'"effectiveDateTime":"2020-01-01","valueQuantity":{"value":170,"unit":"furlong"}}',
    b'{"resourceType":"Encounter","id":"e"}',
    b'{"resourceType":"Patient","id":"p","gender":"robot"}',
    b'not json',
])
def test_records_the_full_rules_reject_are_left_to_them(line):
    assert FastPath(SCOPE, EXCLUDED).decode(line) is None
