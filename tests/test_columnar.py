"""The columnar standardiser gives, record for record, what the full per-record rules give."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from itertools import islice

import pyarrow as pa
import pytest

from tests.conftest import SYNTHEA
from vitalflow.config import RefineSettings
from vitalflow.generate import generate
from vitalflow.ingest import RAW_SCHEMA
from vitalflow.reasons import Filtered
from vitalflow.refine.rules import (Rejected, parse_datetime, standardise_observation,
                                    standardise_patient)
from vitalflow.refine.standardise import (OBSERVATION_STAGE, PATIENT_STAGE, Standardiser,
                                          _with_lineage)
from vitalflow.refine.timestamps import parse_timestamps
from vitalflow.refine.validation import _failures

BATCH = "0123456789abcdef0123456789abcdef"
MAX_BYTES = 4096
UCUM = "http://unitsofmeasure.org"


def _standardiser() -> Standardiser:
    refine = RefineSettings()
    return Standardiser(refine.observation_codes, refine.excluded_statuses, MAX_BYTES)


def _raw(lines: list[bytes]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [{"raw_record_id": f"{BATCH}-{n}", "batch_id": BATCH, "source_uri": "file:///x.ndjson",
          "record_number": n, "raw_json": line.decode("utf-8", "replace")}
         for n, line in enumerate(lines, start=1)], schema=RAW_SCHEMA)


def full_rules(standardiser: Standardiser, raw: pa.RecordBatch, hint: str) -> dict:
    """Every record through rules.py alone, then every row through pandera: the reference."""
    patients, observations, quarantined = [], [], []
    read, filtered = Counter(), Counter()
    for raw_id, text in zip(raw.column("raw_record_id").to_pylist(),
                            raw.column("raw_json").cast(pa.large_binary()).to_pylist(),
                            strict=True):
        kind, resource_id = hint, None
        try:
            resource = standardiser._parse(text)
            kind = resource["resourceType"]
            if kind == "Observation":
                resource_id = resource["id"] if isinstance(resource.get("id"), str) else None
                observations.append(_with_lineage(standardise_observation(
                    resource, standardiser.scope, standardiser.excluded), raw_id, text))
            elif kind == "Patient":
                patients.append(_with_lineage(standardise_patient(resource), raw_id, text))
            else:
                raise Rejected(Filtered.RESOURCE_NOT_IN_SCOPE)
        except Rejected as rejected:
            if isinstance(rejected.reason, Filtered):
                filtered[(kind, str(rejected.reason))] += 1
            else:
                quarantined.append((raw_id, kind, resource_id, str(rejected.reason),
                                    rejected.detail))
        read[kind] += 1
    names = [c.name for c in OBSERVATION_STAGE]
    table = pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in observations],
                                 schema=standardiser.contract.arrow_schema)
    failed = _failures(table, standardiser.contract.schema) if observations else {}
    for index, (reason, detail) in sorted(failed.items()):
        row = observations[index]
        quarantined.append((row[-1], "Observation", row[0], str(reason), detail))
    return {"patients": [dict(zip([c.name for c in PATIENT_STAGE], row, strict=True))
                         for row in patients],
            "observations": [dict(zip(names, row, strict=True))
                             for i, row in enumerate(observations) if i not in failed],
            "quarantine": quarantined, "read": read, "filtered": filtered}


def assert_same_as_full_rules(lines: list[bytes], hint: str = "Observation") -> None:
    standardiser = _standardiser()
    raw = _raw(lines)
    out = standardiser.run(raw, hint)
    expected = full_rules(standardiser, raw, hint)
    assert out.patients.to_pylist() == expected["patients"]
    assert out.observations.to_pylist() == expected["observations"]
    assert [(q["raw_record_id"], q["resource_type"], q["resource_id"], q["reason"], q["detail"])
            for q in out.quarantine.to_pylist()] == expected["quarantine"]
    assert out.read == expected["read"]
    assert out.filtered == expected["filtered"]


def test_generated_records_with_defects(tmp_path):
    generate(tmp_path, 200, seed=5, defect_rate=0.3)
    for name in ("Patient", "Observation"):
        assert_same_as_full_rules((tmp_path / f"{name}.ndjson").read_bytes().splitlines(), name)


@pytest.mark.parametrize("name", ["Patient", "Observation"])
def test_synthea_records(name):
    path = SYNTHEA / f"{name}.ndjson.gz"
    if not path.exists():
        pytest.skip(f"Synthea sample not found at {path} (../shared is beside the project in CI "
                    "and on developer machines only)")
    with gzip.open(path) as handle:
        assert_same_as_full_rules([line.rstrip(b"\n") for line in islice(handle, 20_000)], name)


def _observation(**changes) -> bytes:
    resource = {
        "resourceType": "Observation", "id": "obs-1", "status": "final",
        "meta": {"versionId": "2", "lastUpdated": "2020-01-03T00:00:00Z"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p-1"},
        "effectiveDateTime": "2020-01-02T10:00:00+01:00",
        "valueQuantity": {"value": 70.5, "unit": "kg", "system": UCUM, "code": "kg"}}
    for key, value in changes.items():
        if value is None:
            resource.pop(key, None)
        else:
            resource[key] = value
    return json.dumps(resource, ensure_ascii=False).encode()


def _quantity(value=70.5, unit="kg", system=UCUM, code="kg") -> dict:
    return {k: v for k, v in (("value", value), ("unit", unit), ("system", system),
                              ("code", code)) if v is not None}


DATE_TIMES = [
    "2020-01-02", "2020-01-02T10:00:00Z", "2020-01-02T10:00:00", "2020-01-02T10:00:00.5Z",
    "2020-01-02T10:00:00.123456-05:30", "2020-01-02T10:00:00.1234567Z", "2020-01-02 10:00:00Z",
    "2020-01-02t10:00:00z", "2020-01-02T10:00Z", "2020-01-02T24:00:00Z", "2020-01-02T23:59:60Z",
    "2020-02-29T00:00:00Z", "2019-02-29T00:00:00Z", "2020-01-02T10:00:00+23:59",
    "2020-01-02T10:00:00+24:00", "2020-01-02T10:00:00+0100", "2020-01-02T10:00:00,5Z",
    "0001-01-01T00:00:00+01:00", "0001-01-02T00:00:00+01:00", "9999-12-31T23:00:00-05:00",
    "9999-12-30T23:00:00-05:00", "0000-01-01", "2020", "2020-01", "20200102", "", " ",
    "2020-01-02T10:00:00Z ", "２０２０-01-02", "2020-01-02T10:00:00.000000+00:00",
]
EDGE_CASES = [
    *[_observation(effectiveDateTime=d) for d in DATE_TIMES],
    *[_observation(meta={"lastUpdated": d}) for d in DATE_TIMES],
    *[_observation(id=i) for i in ("a" * 64, "a" * 65, " obs", "obs\u2003", "\x1f", "ö-1",
                                   "a_b", "a.b-C9", "")],
    *[_observation(subject={"reference": r}) for r in (
        "Patient/a", "urn:uuid:a-1", "urn:uuid: a", "urn:uuid:", "Patient/", "Patient/a/",
        "Patient/a/_history/2", "https://x.org/fhir/Patient/a", "Group/a", "patient/a",
        "Patient/a b", "Patient/Patient/a", "urn:uuid:Patient/a", " Patient/a", "")],
    *[_observation(meta=m) for m in ({"versionId": "007"}, {"versionId": "9" * 18},
                                     {"versionId": "9" * 19}, {"versionId": ""},
                                     {"versionId": "٣"}, {"versionId": "1\n"}, {})],
    *[_observation(valueQuantity=q) for q in (
        _quantity(code=""), _quantity(system="http://other.org"), _quantity(system=None),
        _quantity(unit=" kg ", code=None, system=None), _quantity(unit="KG", code=None),
        _quantity(code="KG"), _quantity(unit="pounds", code=None), _quantity(code="[lb_av]"),
        _quantity(value=0), _quantity(value=-1), _quantity(value=650), _quantity(value=650.01),
        _quantity(value=10**30), _quantity(value=1e308, code="[lb_av]"), _quantity(value=1),
        _quantity(value=0.2), _quantity(value=0.1 + 0.1), _quantity(unit=None, code=None),
        _quantity(code="g", value=200))],
    *[_observation(status=s) for s in ("amended", "cancelled", "entered-in-error", "unknown",
                                       "FINAL", "final ")],
    *[_observation(code={"coding": c}) for c in (
        [{"system": "http://snomed.info/sct", "code": "27113001"},
         {"system": "http://loinc.org", "code": "8302-2"}],
        [{"system": "http://loinc.org", "code": "72514-3"},
         {"system": "http://loinc.org", "code": "39156-5"}],
        [{"system": "http://loinc.org", "code": "72514-3"}], [{"code": "29463-7"}], [])],
    *[_observation(code={"coding": [{"system": "http://loinc.org", "code": "72514-3"},
                                    {"system": "http://loinc.org", "code": "bad"}]}, **change)
      for change in ({}, {"status": "done"}, {"status": "cancelled"}, {"id": " "},
                     {"valueQuantity": _quantity(unit="stone", code="stone")},
                     {"effectiveDateTime": "soon"})],
    _observation(code={"coding": [{"system": "http://loinc.org", "code": "72514-4"}]}),
    _observation(code={"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
                 valueQuantity=_quantity(value=66.9, unit="in", code="[in_i]")),
    _observation(code={"coding": [{"system": "http://loinc.org", "code": "39156-5"}]},
                 valueQuantity=_quantity(value=16.2, unit="kg/m2", code="kg/m2")),
    b'{"resourceType":"Observation","id":"a","id":"b","status":"final","code":{"coding":[{"sy'
    b'stem":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/p"},"effec'
    b'tiveDateTime":"2020-01-01","valueQuantity":{"value":70,"unit":"kg"}}',
    b'{"resourceType":"Observation","id":"c","status":"final","code":{"coding":[{"system":"h'
    b'ttp://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/p"},"effectiveDat'
    b'eTime":"2020-01-01","valueQuantity":{"value":"70","unit":"kg"},"meta":null}',
    b'{"resourceType":"Observation","id":"d","status":"final","code":{"coding":[{"system":"h'
    b'ttp://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/p"},"effectiveDat'
    b'eTime":"2020-01-01","valueQuantity":{"value":1e999,"unit":"kg"}}',
    _observation(effectiveDateTime=None, effectivePeriod={"start": "2020-01-01"}),
    _observation(note="x" * MAX_BYTES),
    b'{"resourceType":"Patient","id":"p-1","gender":"female","birthDate":"1970"}',
    b'{"resourceType":"Encounter","id":"e"}', b"not json", b"[1]",
]


def test_hand_written_edge_cases():
    assert_same_as_full_rules(EDGE_CASES)


def test_every_edge_case_alone():
    for line in EDGE_CASES:
        assert_same_as_full_rules([line])


def test_date_times_equal_parse_datetime():
    """Many values in and near the shapes the set-wise parser takes."""
    generator = random.Random(11)
    years = ["0001", "0002", "1900", "2000", "2023", "2100", "9998", "9999"]

    def two(high: int) -> str:
        return f"{generator.randint(0, high):02d}"

    values = list(DATE_TIMES)
    for _ in range(20_000):
        text = f"{generator.choice(years)}-{two(13)}-{two(32)}"
        if generator.random() < 0.8:
            text += f"T{two(24)}:{two(60)}:{two(60)}"
            if generator.random() < 0.5:
                text += "." + "".join(generator.choices("0123456789", k=generator.randint(0, 7)))
            text += generator.choice(["", "Z", f"{generator.choice('+-')}{two(24)}:{two(60)}"])
        values.append(text)
    stamps, parsed = parse_timestamps(pa.array(values, pa.string()))
    taken = 0
    for value, stamp, ok in zip(values, stamps.to_pylist(), parsed.to_pylist(), strict=True):
        if ok:
            taken += 1
            assert stamp == parse_datetime(value, "x"), value
        else:
            assert stamp is None
    assert taken > 1_000
