"""A corpus of hostile input files: each must leave the pipeline running and accounted."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

UCUM = "http://unitsofmeasure.org"
# Records larger than this are quarantined unparsed; the corpus uses a small limit so that a
# "huge line" stays cheap to generate.
MAX_RECORD_BYTES = 1 << 20


def _patient(pid: str, **extra) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1960-05-01",
            **extra}


def _weight(oid: str, pid: str, value=70.0, when="2020-01-02T10:00:00Z", **extra) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": "kg", "system": UCUM, "code": "kg"},
            **extra}


def _lines(records: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n"
                    for r in records)


def write_corpus(folder: Path) -> dict[str, str]:
    """Write the hostile files into folder; file name -> what it tries."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[bytes, str]] = {}
    patients = [_patient(f"h{i}") for i in range(20)]
    files["Patient.000.ndjson"] = (_lines(patients), "the patients the rest refers to")
    nested = json.dumps(_weight("n1", "h1"))[:-1] + ', "extension": ' + "[" * 50_000 \
        + "]" * 50_000 + "}"
    files["Observation.nesting.ndjson"] = (_lines([nested.encode(), _weight("n2", "h1")]),
                                           "50,000 nested arrays")
    files["Observation.huge.ndjson"] = (
        _lines([_weight("big", "h2", note="x" * (2 * MAX_RECORD_BYTES)), _weight("b2", "h2")]),
        "a line twice the record limit")
    files["Observation.utf8.ndjson"] = (
        _lines([b'{"resourceType": "Observation", "id": "\xff\xfe"}', _weight("u2", "h3")]),
        "invalid UTF-8")
    files["Observation.numbers.ndjson"] = (
        _lines([json.dumps(_weight("nan", "h4", value=float("nan"))).encode(),
                json.dumps(_weight("inf", "h4", value=float("inf"))).encode(),
                json.dumps(_weight("big", "h4")).replace("70.0", "1e999").encode(),
                _weight("neg", "h4", value=-5), _weight("ok", "h4")]),
        "NaN, Infinity, 1e999, negative")
    good = gzip.compress(_lines([_weight(f"t{i}", "h5", when=f"2020-01-{i % 28 + 1:02d}")
                                 for i in range(3000)]), mtime=0)
    files["Observation.truncated.ndjson.gz"] = (good[: len(good) // 2], "truncated gzip")
    files["Observation.concatenated.ndjson.gz"] = (
        gzip.compress(_lines([_weight("c1", "h6")]), mtime=0)
        + gzip.compress(_lines([_weight("c2", "h6")]), mtime=0), "two gzip members")
    files["Observation.array.ndjson"] = (_lines([[_weight("a1", "h7"), _weight("a2", "h7")]]),
                                         "a JSON array on one line")
    files["Observation.types.ndjson"] = (
        _lines([_weight("m1", "h8", value="70"), {**_weight("m2", "h8"), "status": 7},
                {**_weight("m3", "h8"), "subject": "Patient/h8"}, 42, "text", None, [],
                {**_weight("m4", "h8"), "code": {"coding": "29463-7"}}]),
        "wrong types everywhere")
    files["Observation.dupes.ndjson"] = (
        _lines([_weight("d1", "h9", value=70, meta={"versionId": "2"}),
                _weight("d1", "h9", value=71, meta={"versionId": "2"}),
                _weight("d1", "h9", value=70, meta={"versionId": "2"})]),
        "duplicate ids with equal versions")
    files["Observation.dates.ndjson"] = (
        _lines([_weight("f1", "h10", when="9999-12-31T23:59:59Z"),
                _weight("f2", "h10", when="0001-01-01T00:00:00Z"),
                _weight("f3", "h10", when="1800-01-01"), _weight("f4", "h10", when="2020-02-30")]),
        "future and ancient dates")
    files["Patient.identifiers.ndjson"] = (
        _lines([_patient("ids", identifier=[{"system": "urn:x", "value": str(i)}
                                            for i in range(50_000)])]),
        "an enormous identifier list")
    files["Observation.bomb.ndjson.gz"] = (gzip.compress(b"a" * (64 << 20), mtime=0),
                                           "a zip bomb: 64 MiB of one line from 64 KiB")
    files["notes.csv"] = (b"id,value\n1,2\n", "not FHIR: skipped with a hint")
    for name, (content, _) in files.items():
        (folder / name).write_bytes(content)
    return {name: what for name, (_, what) in files.items()}
