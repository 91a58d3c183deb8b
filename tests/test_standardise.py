"""Standardise: each raw record is refined, quarantined with a reason, or counted as filtered."""

from __future__ import annotations

import copy
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from vitalflow.catalog import BMI, HEIGHT, WEIGHT
from vitalflow.config import DeriveSettings, IngestSettings, RefineSettings
from vitalflow.generate import generate
from vitalflow.derive.metrics import age_in_years, bmi, summarise_age_bands, weight_category
from vitalflow.ingest import RAW_SCHEMA
from vitalflow.ingest.parquet import ParquetRawStore, discover_inputs
from vitalflow.refine.standardise import StandardisedBatch, Standardiser, reference_id

HL7_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "hl7-examples"
BATCH_ID = "0123456789abcdef0123456789abcdef"
UCUM = "http://unitsofmeasure.org"
PATIENT_ID = "pat-secret-4711"
PATIENT = {"resourceType": "Patient", "id": PATIENT_ID, "gender": "male",
           "birthDate": "1974-12-25",
           "name": [{"family": "Chalmers", "given": ["Peter", "James"]}]}
WEIGHT_OBS = {
    "resourceType": "Observation", "id": "obs-1", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    "subject": {"reference": f"Patient/{PATIENT_ID}"},
    "effectiveDateTime": "2020-01-02T10:00:00Z",
    "valueQuantity": {"value": 70.5, "unit": "kg", "system": UCUM, "code": "kg"},
}
_DELETE = object()


def _standardiser(max_record_bytes: int | None = None) -> Standardiser:
    refine = RefineSettings()
    return Standardiser(refine.observation_codes, refine.excluded_statuses,
                        max_record_bytes or IngestSettings().max_record_bytes)


def _raw(records: list) -> pa.RecordBatch:
    """A raw batch as ParquetRawStore writes it: text, or bytes for records that are not UTF-8."""
    rows = []
    for number, record in enumerate(records, start=1):
        text = record if isinstance(record, str) else None
        blob = record if isinstance(record, bytes) else None
        if isinstance(record, dict | list):
            text = json.dumps(record)
        rows.append({"raw_record_id": f"{BATCH_ID}-{number}", "batch_id": BATCH_ID,
                     "source_uri": "file:///in/Observation.ndjson", "record_number": number,
                     "raw_json": text, "raw_bytes": blob})
    return pa.RecordBatch.from_pylist(rows, schema=RAW_SCHEMA)


def _run(*records, hint: str | None = None, max_record_bytes: int | None = None
         ) -> StandardisedBatch:
    return _standardiser(max_record_bytes).run(_raw(list(records)), hint)


def _with(resource: dict, **changes) -> dict:
    """A copy with top-level keys replaced, or removed when given _DELETE."""
    changed = copy.deepcopy(resource)
    for key, value in changes.items():
        if value is _DELETE:
            changed.pop(key, None)
        else:
            changed[key] = value
    return changed


def _obs(**changes) -> dict:
    return _with(WEIGHT_OBS, **changes)


def _patient(**changes) -> dict:
    return _with(PATIENT, **changes)


def _coded(code: str, system: str = "http://loinc.org") -> dict:
    return {"coding": [{"system": system, "code": code}]}


def _quantity(value, code: str = "kg") -> dict:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


QUARANTINE_CASES = [
    ("malformed_json", '{"resourceType": "Observation", "id": "obs-1", '),
    ("malformed_json", "{'resourceType': 'Observation'}"),
    ("malformed_json", b'{"resourceType": "Patient", "id": "M\xfcller"}'),  # Latin-1 bytes
    ("not_a_resource", "[1, 2, 3]"),
    ("not_a_resource", '"Observation"'),
    ("not_a_resource", {"id": "obs-1", "status": "final"}),
    ("not_a_resource", {"resourceType": 7}),
    ("missing_id", _obs(id=_DELETE)),
    ("missing_id", _obs(id="  ")),
    ("missing_id", _obs(id=42)),
    ("missing_id", _patient(id=_DELETE)),
    ("missing_subject", _obs(subject=_DELETE)),
    ("missing_subject", _obs(subject={"reference": "Group/17"})),
    ("missing_subject", _obs(subject={"reference": "Practitioner/1/_history/2"})),
    ("missing_subject", _obs(subject={"display": "Peter Chalmers"})),
    ("missing_subject", _obs(subject={"reference": "Patient/"})),
    ("missing_code", _obs(code={"text": "Body weight"})),
    ("missing_code", _obs(code={"coding": []})),
    ("missing_code", _obs(code=_DELETE)),
    ("invalid_code", _obs(code=_coded("29463-8"))),  # wrong check digit
    ("invalid_code", _obs(code=_coded("body-weight"))),
    ("invalid_code", _obs(code={"coding": [{"system": "http://loinc.org",
                                            "code": ["29463-7"]}]})),
    ("unknown_code_system", _obs(code=_coded("27113001", "http://snomed.info/sct"))),
    ("missing_value", _obs(valueQuantity=_DELETE)),
    ("missing_value", _obs(valueQuantity={"unit": "kg", "system": UCUM, "code": "kg"})),
    ("missing_value", _obs(valueQuantity=_DELETE, valueString="70 kg")),
    ("invalid_value", _obs(valueQuantity=_quantity("70.5"))),
    ("invalid_value", _obs(valueQuantity=_quantity(True))),
    ("unknown_unit", _obs(valueQuantity=_quantity(11, "stone"))),
    ("unknown_unit", _obs(valueQuantity=_quantity(70, "cm"))),
    ("unknown_unit", _obs(valueQuantity={"value": 70})),
    ("out_of_range", _obs(code=_coded(HEIGHT.code), valueQuantity=_quantity(900, "cm"))),
    ("out_of_range", _obs(valueQuantity=_quantity(-70, "kg"))),
    ("out_of_range", _obs(code=_coded(BMI.code), valueQuantity=_quantity(0, "kg/m2"))),
    ("out_of_range", _obs(code=_coded(HEIGHT.code), valueQuantity=_quantity(1e308, "m"))),
    ("missing_effective", _obs(effectiveDateTime=_DELETE)),
    ("missing_effective", _obs(effectiveDateTime=_DELETE, effectivePeriod={"end": "2020-01-02"})),
    ("invalid_date", _obs(effectiveDateTime="2020-13-45")),
    ("invalid_date", _obs(effectiveDateTime="2019")),
    ("invalid_date", _obs(effectiveDateTime="2019-05")),
    ("invalid_date", _obs(effectiveDateTime=20200102)),
    ("invalid_date", _obs(effectiveDateTime="9999-12-31T23:00:00-05:00")),  # year 10000 in UTC
    ("invalid_date", _obs(effectiveDateTime=_DELETE, effectivePeriod={"start": "soon"})),
    ("invalid_date", _patient(birthDate="1974-02-30")),
    ("invalid_date", _patient(birthDate=(date.today() + timedelta(days=2)).isoformat())),
    ("invalid_date", _patient(deceasedDateTime="last year")),
    ("invalid_status", _obs(status="done")),
    ("invalid_status", _obs(status=_DELETE)),
    ("invalid_status", _obs(status=["final"])),
    ("invalid_gender", _patient(gender="M")),
    ("invalid_gender", _patient(gender=["male"])),
]


@pytest.mark.parametrize("reason, record", QUARANTINE_CASES,
                         ids=[f"{r}-{i}" for i, (r, _) in enumerate(QUARANTINE_CASES)])
def test_quarantine_reason(reason, record):
    out = _run(record, hint="Observation")

    assert out.quarantine.column("reason").to_pylist() == [reason]
    [row] = out.quarantine.to_pylist()
    assert (row["raw_record_id"], row["batch_id"]) == (f"{BATCH_ID}-1", BATCH_ID)
    assert row["detail"]
    assert out.patients.num_rows == out.observations.num_rows == 0
    assert not out.filtered
    assert sum(out.read.values()) == 1


def test_quarantine_row_names_the_observation_and_falls_back_to_the_type_hint():
    out = _run(_obs(id="obs-bad", status="done"), "not json", hint="Observation")

    rows = out.quarantine.to_pylist()
    assert [(r["resource_type"], r["resource_id"]) for r in rows] == [
        ("Observation", "obs-bad"), ("Observation", None)]
    assert _run("not json").quarantine.column("resource_type").to_pylist() == ["unknown"]


def test_record_too_large_is_not_parsed():
    record = _obs(note="x" * 500)

    out = _run(record, json.dumps(WEIGHT_OBS), max_record_bytes=400)

    assert out.quarantine.column("reason").to_pylist() == ["record_too_large"]
    assert out.quarantine.column("resource_id").to_pylist() == [None]  # never parsed
    assert out.observations.num_rows == 1


@pytest.mark.parametrize("record, resource_type, reason", [
    (_obs(code=_coded("72514-3")), "Observation", "code_not_in_scope"),  # valid LOINC, pain
    (_obs(status="entered-in-error"), "Observation", "status_excluded"),
    (_obs(status="cancelled"), "Observation", "status_excluded"),
    ({"resourceType": "Encounter", "id": "enc-1", "status": "finished"}, "Encounter",
     "resource_type_not_in_scope"),
])
def test_filter_reason(record, resource_type, reason):
    out = _run(record, hint="Observation")

    assert dict(out.filtered) == {(resource_type, reason): 1}
    assert dict(out.read) == {resource_type: 1}
    assert out.quarantine.num_rows == out.observations.num_rows == out.patients.num_rows == 0


def test_patient_quarantine_rows_carry_no_identifiers():
    bad_patients = [
        _patient(gender="M"),
        _patient(birthDate="1974-13-01"),
        _patient(birthDate=(date.today() + timedelta(days=30)).isoformat()),
        _patient(deceasedDateTime="2020-02-30T10:00:00Z"),
        _patient(id=_DELETE),
        json.dumps(PATIENT)[:-5],  # truncated line
        json.dumps(PATIENT).replace(":", " ", 1),
        json.dumps(PATIENT).encode("utf-16"),  # not UTF-8
    ]

    out = _run(*bad_patients, hint="Patient")

    rows = out.quarantine.to_pylist()
    assert len(rows) == len(bad_patients)
    for row in rows:
        assert row["resource_type"] == "Patient"
        assert row["resource_id"] is None
        for secret in (PATIENT_ID, "Chalmers", "Peter", "1974"):
            assert secret not in row["detail"]


def test_observation_quarantine_details_carry_no_patient_identifiers():
    records = [_obs(id=f"o{i}", **change) for i, change in enumerate([
        {"subject": {"reference": f"Group/{PATIENT_ID}"}}, {"status": "done"},
        {"effectiveDateTime": "2020-13-45"}, {"valueQuantity": _quantity(3, "stone")},
        {"code": _coded("29463-8")}, {"valueQuantity": _quantity(900, "kg")}])]

    out = _run(*records)

    assert out.quarantine.num_rows == len(records)
    assert not any(PATIENT_ID in detail for detail in out.quarantine.column("detail").to_pylist())


@pytest.mark.parametrize("reference, key", [
    ("Patient/123", "123"),
    ("urn:uuid:abc", "abc"),
    ("https://x.org/fhir/Patient/123", "123"),
    ("Patient/123/_history/2", "123"),
    ("https://x.org/fhir/Patient/123/_history/2", "123"),
])
def test_patient_references(reference, key):
    assert reference_id({"reference": reference}) == key
    out = _run(_obs(subject={"reference": reference}))
    assert out.observations.column("patient_key").to_pylist() == [key]


def test_hl7_example_shapes_are_converted_to_canonical_units():
    weight = _obs(id="example", effectiveDateTime="2016-03-28",
                  valueQuantity={"value": 185, "unit": "lbs", "system": UCUM, "code": "[lb_av]"},
                  meta={"versionId": "3", "lastUpdated": "2016-03-28T12:00:00+02:00"})
    height = _obs(id="body-height", code=_coded(HEIGHT.code), effectiveDateTime="1999-07-02",
                  valueQuantity={"value": 66.89999999999999, "unit": "in", "system": UCUM,
                                 "code": "[in_i]"})
    free_text = _obs(id="free-text", valueQuantity={"value": 154, "unit": "pounds"})

    out = _run(weight, height, free_text)

    assert out.quarantine.num_rows == 0
    rows = {r["observation_id"]: r for r in out.observations.to_pylist()}
    w, h, f = rows["example"], rows["body-height"], rows["free-text"]
    assert (w["measure"], w["unit"], w["code"]) == ("body_weight", "kg", WEIGHT.code)
    assert w["value"] == pytest.approx(83.91, abs=0.005)
    assert (w["source_value"], w["source_unit"]) == (185.0, "[lb_av]")
    assert w["effective_at"] == datetime(2016, 3, 28, tzinfo=UTC)
    assert w["version"] == 3
    assert w["last_updated"] == datetime(2016, 3, 28, 10, tzinfo=UTC)
    assert (h["measure"], h["unit"]) == ("body_height", "cm")
    assert h["value"] == pytest.approx(169.93, abs=0.005)
    assert (h["source_value"], h["source_unit"]) == (pytest.approx(66.9), "[in_i]")
    assert f["value"] == pytest.approx(69.85, abs=0.005)
    assert f["source_unit"] == "pounds"
    assert w["content_hash"] != h["content_hash"]
    assert w["raw_record_id"] == f"{BATCH_ID}-1"


def test_offsets_are_converted_to_utc():
    # pandera sets PYARROW_IGNORE_TIMEZONE on import: Arrow alone would keep 10:00 as UTC.
    out = _run(_obs(effectiveDateTime="2016-03-28T10:00:00+02:00"),
               _obs(id="obs-2", effectiveDateTime="2016-03-28T23:30:00-05:00"),
               _patient(deceasedDateTime="2021-06-01T01:00:00+05:30"))

    assert out.observations.column("effective_at").to_pylist() == [
        datetime(2016, 3, 28, 8, tzinfo=UTC), datetime(2016, 3, 29, 4, 30, tzinfo=UTC)]
    assert out.patients.column("deceased_at").to_pylist() == [
        datetime(2021, 5, 31, 19, 30, tzinfo=UTC)]


@pytest.mark.parametrize("version_id, version", [
    ("7", 7), ("v2", None), ("²", None), ("9" * 30, None), (3, None)])
def test_version_id_that_is_not_a_bigint_gives_no_version(version_id, version):
    out = _run(_obs(meta={"versionId": version_id}), _patient(meta={"versionId": version_id}))

    assert out.observations.column("version").to_pylist() == [version]
    assert out.patients.column("version").to_pylist() == [version]


def test_patient_fields():
    out = _run(_patient(birthDate="1974", meta={"versionId": "2",
                                                "lastUpdated": "2020-01-01T00:00:00Z"}),
               _patient(id="p2", birthDate="1974-12", gender=_DELETE),
               _patient(id="p3", deceasedDateTime="2020-01-01"))

    rows = out.patients.to_pylist()
    assert [r["birth_date"] for r in rows] == [date(1974, 1, 1), date(1974, 12, 1),
                                               date(1974, 12, 25)]
    assert [r["gender"] for r in rows] == ["male", None, "male"]
    assert rows[0]["version"] == 2 and rows[0]["last_updated"] == datetime(2020, 1, 1, tzinfo=UTC)
    assert rows[2]["deceased_at"] == datetime(2020, 1, 1, tzinfo=UTC)


def test_every_record_of_a_mixed_batch_is_accounted_for():
    records = [
        _patient(), _patient(id="p2", gender="F"), "garbage", b"\xff\xfe",
        _obs(), _obs(id="o2", code=_coded(HEIGHT.code), valueQuantity=_quantity(900, "cm")),
        _obs(id="o3", code=_coded("72514-3")), _obs(id="o4", status="entered-in-error"),
        {"resourceType": "Encounter", "id": "e1"}, {"resourceType": "Encounter", "id": "e2"},
        _obs(id="o5", subject=_DELETE), _obs(id="o6", valueQuantity=_quantity(5, "stone")),
        _obs(id="o7", effectiveDateTime="2016-03-28T10:00:00+02:00"),
    ]

    out = _run(*records, hint="Observation")

    assert sum(out.read.values()) == len(records)
    assert sum(out.read.values()) == (out.patients.num_rows + out.observations.num_rows
                                      + out.quarantine.num_rows + sum(out.filtered.values()))
    assert dict(out.read) == {"Patient": 2, "Observation": 9, "Encounter": 2}
    assert (out.patients.num_rows, out.observations.num_rows) == (1, 2)
    assert Counter(out.quarantine.column("reason").to_pylist()) == {
        "invalid_gender": 1, "malformed_json": 2, "out_of_range": 1, "missing_subject": 1,
        "unknown_unit": 1}
    assert out.filtered == Counter({("Observation", "code_not_in_scope"): 1,
                                    ("Observation", "status_excluded"): 1,
                                    ("Encounter", "resource_type_not_in_scope"): 2})
    # Contract failures keep the raw lineage of the record.
    [range_row] = [r for r in out.quarantine.to_pylist() if r["reason"] == "out_of_range"]
    assert (range_row["raw_record_id"], range_row["batch_id"], range_row["resource_id"]) == (
        f"{BATCH_ID}-6", BATCH_ID, "o2")
    ids = out.quarantine.column("raw_record_id").to_pylist()
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("measure", "value", "refined"), [
    (WEIGHT, WEIGHT.low, True), (WEIGHT, WEIGHT.low * 0.99, False), (WEIGHT, 1.5, True),
    (WEIGHT, WEIGHT.high, True), (WEIGHT, WEIGHT.high * 1.01, False),
    (HEIGHT, HEIGHT.low, True), (HEIGHT, HEIGHT.low * 0.99, False), (HEIGHT, 260, True),
    (HEIGHT, HEIGHT.high, True), (HEIGHT, HEIGHT.high * 1.01, False),
])
def test_plausible_ranges_include_their_bounds(measure, value, refined):
    """A newborn's 1.5 kg and a 260 cm height are plausible; just outside a bound is not."""
    out = _run(_obs(code=_coded(measure.code), valueQuantity=_quantity(value, measure.unit)))
    assert out.observations.num_rows == int(refined)
    assert out.quarantine.column("reason").to_pylist() == ([] if refined else ["out_of_range"])
    assert (measure.low, measure.high) == {"body_weight": (0.2, 650.0),
                                           "body_height": (20.0, 275.0)}[measure.name]


# --- HL7 FHIR R4 examples ----------------------------------------------------------------------


@pytest.fixture
def hl7(tmp_path) -> ParquetRawStore:
    if not HL7_EXAMPLES.is_dir():
        pytest.skip(f"HL7 examples not found at {HL7_EXAMPLES} (../shared is beside the project "
                    "in CI and on developer machines only)")
    return ParquetRawStore(tmp_path / "raw")


def _standardise_example(store: ParquetRawStore, name: str) -> StandardisedBatch:
    batch = store.ingest(HL7_EXAMPLES / name).batch
    assert batch.records == 1
    [part] = list(store.read(batch.batch_id))
    return _standardiser().run(part, batch.resource_type_hint)


def test_hl7_weight_example(hl7):
    out = _standardise_example(hl7, "observation-example.json")

    [row] = out.observations.to_pylist()
    assert (row["observation_id"], row["patient_key"], row["measure"], row["code"]) == (
        "example", "example", "body_weight", WEIGHT.code)
    assert row["value"] == pytest.approx(83.91, abs=0.005)
    assert (row["unit"], row["source_value"], row["source_unit"]) == ("kg", 185.0, "[lb_av]")
    assert row["effective_at"] == datetime(2016, 3, 28, tzinfo=UTC)


def test_hl7_height_example(hl7):
    [row] = _standardise_example(hl7, "observation-example-body-height.json").observations \
        .to_pylist()
    assert (row["measure"], row["unit"], row["source_unit"]) == ("body_height", "cm", "[in_i]")
    assert row["value"] == pytest.approx(169.93, abs=0.005)
    assert row["effective_at"] == datetime(1999, 7, 2, tzinfo=UTC)


def test_hl7_bmi_example(hl7):
    [row] = _standardise_example(hl7, "observation-example-bmi.json").observations.to_pylist()
    assert (row["measure"], row["value"], row["unit"]) == ("bmi", 16.2, "kg/m2")


def test_hl7_decimal_example_has_no_coding(hl7):
    # Only code.text and component values: nothing to standardise, so it is quarantined.
    out = _standardise_example(hl7, "observation-decimal.json")

    [row] = out.quarantine.to_pylist()
    assert (row["resource_type"], row["resource_id"], row["reason"]) == (
        "Observation", "decimal", "missing_code")
    assert out.observations.num_rows == 0


def test_hl7_patient_example(hl7):
    out = _standardise_example(hl7, "patient-example.json")

    [row] = out.patients.to_pylist()
    assert (row["patient_key"], row["gender"], row["birth_date"], row["deceased_at"]) == (
        "example", "male", date(1974, 12, 25), None)
    assert out.quarantine.num_rows == 0


# --- End to end, without a database ------------------------------------------------------------


def _newest(rows: list[dict], key: str) -> dict[str, dict]:
    """One row per key, newest version first as refine ranks them."""
    best: dict[str, dict] = {}
    for row in rows:
        rank = (row["version"] or -1, row["last_updated"] or datetime.min.replace(tzinfo=UTC),
                row["content_hash"])
        current = best.get(row[key])
        if current is None or rank > current["_rank"]:
            best[row[key]] = row | {"_rank": rank}
    return best


def test_generated_export_end_to_end(tmp_path):
    report = generate(tmp_path / "export", 60, seed=3, defect_rate=0.1)
    store = ParquetRawStore(tmp_path / "raw")
    standardiser = _standardiser()
    read, filtered, reasons = Counter(), Counter(), Counter()
    patients, observations = [], []
    for path in discover_inputs(tmp_path / "export"):
        batch = store.ingest(path).batch
        for part in store.read(batch.batch_id):
            out = standardiser.run(part, batch.resource_type_hint)
            read.update(out.read)
            filtered.update(out.filtered)
            reasons.update(out.quarantine.column("reason").to_pylist())
            patients += out.patients.to_pylist()
            observations += out.observations.to_pylist()

    # Every line is read once and ends up in exactly one place.
    assert read == {"Patient": report.patients, "Observation": report.observations}
    assert sum(read.values()) == (len(patients) + len(observations) + sum(reasons.values())
                                  + sum(filtered.values()))
    assert not filtered
    defects = report.defects
    assert reasons == Counter({
        "malformed_json": defects["malformed_json"], "missing_subject": defects["missing_subject"],
        "invalid_code": defects["unknown_code"], "unknown_unit": defects["unknown_unit"],
        "out_of_range": defects["impossible_value"]})

    people = _newest(patients, "patient_key")
    latest = _newest(observations, "observation_id")
    assert len(people) == 60
    orphans = {o for o, row in latest.items() if row["patient_key"] not in people}
    assert len(orphans) == defects["orphan"]

    by_patient: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in latest.values():
        by_patient[row["patient_key"]][row["measure"]].append(row)
    settings = DeriveSettings()
    summary_rows, compared = [], 0
    for key, person in people.items():
        measures = by_patient[key]
        weight = max(measures["body_weight"], key=lambda r: (r["effective_at"],
                                                             r["observation_id"]))
        weighed = weight["effective_at"]
        age = age_in_years(person["birth_date"], weighed.date())
        window = timedelta(days=settings.child_height_window_days if age < 18
                           else settings.height_window_days)
        heights = [h for h in measures["body_height"]
                   if weighed - window <= h["effective_at"] <= weighed]
        height = max(heights, key=lambda r: (r["effective_at"], r["observation_id"]), default=None)
        value = bmi(weight["value"], height["value"]) if height else None
        reported = [b for b in measures["bmi"] if b["effective_at"] == weighed]
        # An amended (version 2) value no longer matches the BMI computed from version 1.
        if value is not None and reported and all(
                r["version"] == 1 for r in (weight, height, *reported)):
            assert height["effective_at"] == weighed
            assert value == pytest.approx(reported[0]["value"], abs=0.01)
            compared += 1
        summary_rows.append({"patient_key": key, "sex": person["gender"], "bmi": value,
                             "weight_category": weight_category(value, age), "age_years": age})
    assert compared >= 25

    summary = summarise_age_bands(summary_rows, settings.age_bands)
    assert sum(group["patients"] for group in summary) == len(people)
    assert len({(g["age_band"], g["sex"], g["weight_category"]) for g in summary}) == len(summary)


def test_standardiser_rejects_codes_without_a_measure():
    with pytest.raises(ValueError, match="72514-3"):
        Standardiser(["8302-2", "72514-3"], [], 1024)
