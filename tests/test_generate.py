"""Tests for the synthetic FHIR export generator."""

from __future__ import annotations

import gzip
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path

import orjson
import pytest

from vitalflow.catalog import BMI, HEIGHT, MEASURES, WEIGHT, is_valid_loinc
from vitalflow.generate import (
    DEFECT_KINDS,
    OBSERVATION_DEFECTS,
    REPORT_FILE,
    GenerationReport,
    generate,
)


def _lines(path: Path) -> list[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return handle.read().splitlines()


def _subject_id(resource: dict) -> str:
    reference = resource["subject"]["reference"]
    return reference.removeprefix("Patient/").removeprefix("urn:uuid:")


def _canonical(resource: dict) -> float | None:
    quantity = resource["valueQuantity"]
    return MEASURES[resource["code"]["coding"][0]["code"]].to_canonical(
        quantity["value"], quantity["code"])


@pytest.fixture(scope="module")
def defective(tmp_path_factory) -> tuple[Path, GenerationReport]:
    out = tmp_path_factory.mktemp("defective")
    return out, generate(out, 300, seed=7, defect_rate=0.2)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, GenerationReport]:
    out = tmp_path_factory.mktemp("clean")
    return out, generate(out, 300, seed=7, defect_rate=0.0)


@pytest.fixture(scope="module")
def clean_records(clean) -> tuple[dict[str, dict], list[dict]]:
    out, _ = clean
    patients = {p["id"]: p for p in map(orjson.loads, _lines(out / "Patient.ndjson"))}
    return patients, [orjson.loads(line) for line in _lines(out / "Observation.ndjson")]


def _all_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.mark.parametrize("compress", [False, True])
def test_same_seed_gives_identical_bytes(tmp_path, compress):
    generate(tmp_path / "a", 40, seed=3, defect_rate=0.2, gzip=compress)
    generate(tmp_path / "b", 40, seed=3, defect_rate=0.2, gzip=compress)
    assert _all_bytes(tmp_path / "a") == _all_bytes(tmp_path / "b")


def test_different_seed_gives_different_data(tmp_path):
    generate(tmp_path / "a", 40, seed=3)
    generate(tmp_path / "b", 40, seed=4)
    for name in ("Patient.ndjson", "Observation.ndjson"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_report_counts_match_files(defective):
    out, report = defective
    assert report.files == ["Patient.ndjson", "Observation.ndjson"]
    assert len(_lines(out / "Patient.ndjson")) == report.patients
    assert len(_lines(out / "Observation.ndjson")) == report.observations
    assert orjson.loads((out / REPORT_FILE).read_bytes()) == report.to_dict()


def test_gzip_output_holds_the_same_lines(tmp_path):
    plain = generate(tmp_path / "plain", 60, seed=5, defect_rate=0.1)
    packed = generate(tmp_path / "packed", 60, seed=5, defect_rate=0.1, gzip=True)
    assert packed.files == ["Patient.ndjson.gz", "Observation.ndjson.gz"]
    assert (packed.patients, packed.observations, packed.defects) == (
        plain.patients, plain.observations, plain.defects)
    for plain_name, packed_name in zip(plain.files, packed.files):
        assert _lines(tmp_path / "packed" / packed_name) == _lines(tmp_path / "plain" / plain_name)


def test_observations_are_well_formed(clean_records):
    patients, observations = clean_records
    for obs in observations:
        assert obs["resourceType"] == "Observation"
        assert obs["meta"]["versionId"] == "1" and obs["meta"]["lastUpdated"]
        assert obs["status"] in {"final", "amended"}
        assert obs["category"][0]["coding"][0]["code"] == "vital-signs"
        coding = obs["code"]["coding"][0]
        assert coding["system"] == "http://loinc.org" and coding["code"] in MEASURES
        assert _subject_id(obs) in patients
        quantity = obs["valueQuantity"]
        assert isinstance(quantity["value"], float)
        assert quantity["system"] == "http://unitsofmeasure.org"
        assert datetime.fromisoformat(obs["effectiveDateTime"]).utcoffset() is not None
    assert len({obs["id"] for obs in observations}) == len(observations)


def test_mix_of_units_references_offsets_and_statuses(clean_records):
    _, observations = clean_records
    units = Counter(obs["valueQuantity"]["code"] for obs in observations)
    assert {"[in_i]", "m", "[lb_av]"} <= set(units)
    non_canonical = sum(n for unit, n in units.items() if unit not in {"cm", "kg", "kg/m2"})
    hw = sum(n for unit, n in units.items() if unit != "kg/m2")
    assert 0.10 < non_canonical / hw < 0.20
    styles = Counter(obs["subject"]["reference"].split(":")[0].split("/")[0]
                     for obs in observations)
    assert styles["Patient"] > styles["urn"] > 0
    offsets = Counter(obs["effectiveDateTime"][-6:] for obs in observations)
    assert offsets["+00:00"] > 0 and len(offsets) > 2
    statuses = Counter(obs["status"] for obs in observations)
    assert statuses["final"] > statuses["amended"] > 0


def test_values_are_plausible_after_unit_conversion(clean_records):
    _, observations = clean_records
    for obs in observations:
        measure = MEASURES[obs["code"]["coding"][0]["code"]]
        value = _canonical(obs)
        assert value is not None and measure.low <= value <= measure.high, obs


def test_bmi_agrees_with_height_and_weight_of_the_same_visit(clean_records):
    _, observations = clean_records
    visits: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for obs in observations:
        visit = (_subject_id(obs), obs["effectiveDateTime"])
        visits[visit][obs["code"]["coding"][0]["code"]] = _canonical(obs)
    with_bmi = [v for v in visits.values() if BMI.code in v]
    assert 0.6 < len(with_bmi) / len(visits) < 0.8
    for visit in visits.values():
        assert {HEIGHT.code, WEIGHT.code} <= set(visit)
    for visit in with_bmi:
        computed = visit[WEIGHT.code] / (visit[HEIGHT.code] / 100) ** 2
        assert abs(computed - visit[BMI.code]) <= 0.01


def test_visits_fall_within_life_and_before_2026(clean_records):
    patients, observations = clean_records
    for obs in observations:
        patient = patients[_subject_id(obs)]
        when = datetime.fromisoformat(obs["effectiveDateTime"])
        assert when.date() >= date.fromisoformat(patient["birthDate"])
        assert when.date() <= date(2025, 12, 31)
        if "deceasedDateTime" in patient:
            assert when <= datetime.fromisoformat(patient["deceasedDateTime"])


def test_population_looks_realistic(clean_records):
    patients, observations = clean_records
    genders = Counter(p["gender"] for p in patients.values())
    assert genders["male"] > 100 and genders["female"] > 100
    assert all(p["identifier"][0]["system"] == "urn:vitalflow:mrn" for p in patients.values())
    assert any("deceasedDateTime" in p for p in patients.values())
    ages = [2025 - int(p["birthDate"][:4]) for p in patients.values()]
    assert min(ages) <= 5 and max(ages) >= 75

    heights: dict[str, list[float]] = defaultdict(list)
    adult_bmis = []
    for obs in observations:
        patient = patients[_subject_id(obs)]
        age = int(obs["effectiveDateTime"][:4]) - int(patient["birthDate"][:4])
        code = obs["code"]["coding"][0]["code"]
        if age >= 20 and code == HEIGHT.code:
            heights[patient["id"]].append(_canonical(obs))
        if age >= 20 and code == BMI.code:
            adult_bmis.append(_canonical(obs))
    # An adult's height barely moves between visits.
    assert all(max(h) - min(h) < 3.0 for h in heights.values())
    male = [statistics.mean(h) for pid, h in heights.items() if patients[pid]["gender"] == "male"]
    assert 170 < statistics.mean(male) < 182
    categories = Counter(
        "under" if b < 18.5 else "normal" if b < 25 else "over" if b < 30 else "obese"
        for b in adult_bmis)
    assert set(categories) == {"under", "normal", "over", "obese"}
    assert 24 < statistics.median(adult_bmis) < 28


def _classify(lines: list[bytes], patient_ids: set[str]) -> Counter:
    """Recover each line's defect from its content alone."""
    kinds: Counter = Counter()
    seen: set[bytes] = set()
    for line in lines:
        if line in seen:
            kinds["duplicate"] += 1
            continue
        seen.add(line)
        try:
            obs = orjson.loads(line)
        except orjson.JSONDecodeError:
            kinds["malformed_json"] += 1
            continue
        code = obs["code"]["coding"][0]["code"]
        if obs["meta"]["versionId"] == "2":
            kinds["newer_version"] += 1
        elif "subject" not in obs:
            kinds["missing_subject"] += 1
        elif not is_valid_loinc(code):
            kinds["unknown_code"] += 1
        elif _canonical(obs) is None:
            kinds["unknown_unit"] += 1
        elif not MEASURES[code].low <= _canonical(obs) <= MEASURES[code].high:
            kinds["impossible_value"] += 1
        elif _subject_id(obs) not in patient_ids:
            kinds["orphan"] += 1
        else:
            kinds["clean"] += 1
    return kinds


def test_every_defect_kind_is_present_and_counted_exactly(defective):
    out, report = defective
    assert set(report.defects) == set(DEFECT_KINDS)
    assert all(report.defects[kind] > 0 for kind in DEFECT_KINDS)

    patient_lines = _lines(out / "Patient.ndjson")
    assert len(patient_lines) - len(set(patient_lines)) == report.defects["patient_duplicate"]
    patient_ids = {orjson.loads(line)["id"] for line in patient_lines}

    kinds = _classify(_lines(out / "Observation.ndjson"), patient_ids)
    assert {kind: kinds[kind] for kind in OBSERVATION_DEFECTS} == {
        kind: report.defects[kind] for kind in OBSERVATION_DEFECTS}
    defect_lines = sum(report.defects[kind] for kind in OBSERVATION_DEFECTS)
    assert kinds["clean"] == report.observations - defect_lines
    assert 0.17 < defect_lines / report.observations < 0.23


def test_newer_version_precedes_version_one(defective):
    out, _ = defective
    first_seen: dict[tuple[str, str], tuple[int, dict]] = {}
    for index, line in enumerate(_lines(out / "Observation.ndjson")):
        try:
            obs = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        first_seen.setdefault((obs["id"], obs["meta"]["versionId"]), (index, obs))
    newer = [key for key in first_seen if key[1] == "2"]
    assert newer
    for obs_id, _ in newer:
        v2_index, v2 = first_seen[(obs_id, "2")]
        v1_index, v1 = first_seen[(obs_id, "1")]
        assert v2_index < v1_index
        assert v2["meta"]["lastUpdated"] > v1["meta"]["lastUpdated"]
        assert v2["valueQuantity"]["value"] != v1["valueQuantity"]["value"]
        assert abs(_canonical(v2) / _canonical(v1) - 1) < 0.05


def test_zero_defect_rate_has_no_defects(clean):
    out, report = clean
    assert sum(report.defects.values()) == 0
    for name in report.files:
        lines = _lines(out / name)
        assert len(lines) == len(set(lines))
        assert all(orjson.loads(line)["meta"]["versionId"] == "1" for line in lines)


def test_defects_are_added_without_changing_clean_records(clean, defective):
    clean_out, _ = clean
    defective_out, _ = defective
    for name in ("Patient.ndjson", "Observation.ndjson"):
        missing = Counter(_lines(clean_out / name)) - Counter(_lines(defective_out / name))
        assert not missing


def test_progress_reports_patients_done(tmp_path):
    calls: list[int] = []
    generate(tmp_path, 600, seed=1, visits=1, progress=calls.append)
    assert calls == sorted(calls) and calls[-1] == 600


@pytest.mark.parametrize("kwargs", [
    {"patients": -1}, {"patients": 5, "visits": 0}, {"patients": 5, "defect_rate": 0.9},
    {"patients": 5, "duplicate_share": 1.5},
])
def test_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate(tmp_path, **kwargs)


@pytest.fixture(scope="module")
def duplicated(tmp_path_factory) -> tuple[Path, GenerationReport]:
    out = tmp_path_factory.mktemp("duplicated")
    return out, generate(out, 300, seed=7, defect_rate=0.0, duplicate_share=0.3)


def test_duplicates_leave_other_records_and_all_measurements_unchanged(clean, duplicated):
    (clean_out, clean_report), (dup_out, report) = clean, duplicated
    assert report.patients == clean_report.patients + report.duplicate_patients
    assert report.observations == clean_report.observations
    assert not Counter(_lines(clean_out / "Patient.ndjson")) - Counter(
        _lines(dup_out / "Patient.ndjson"))
    original = {member: cluster[0] for cluster in report.identity_clusters for member in cluster}
    moved = []
    for before, after in zip(_lines(clean_out / "Observation.ndjson"),
                             _lines(dup_out / "Observation.ndjson"), strict=True):
        old, new = orjson.loads(before), orjson.loads(after)
        moved.append(_subject_id(new) != _subject_id(old))
        new["subject"]["reference"] = new["subject"]["reference"].replace(
            _subject_id(new), original.get(_subject_id(new), _subject_id(new)))
        assert new == old
    assert any(moved)


def test_duplicate_ground_truth_and_visits(duplicated):
    out, report = duplicated
    patients = {p["id"]: p for p in map(orjson.loads, _lines(out / "Patient.ndjson"))}
    members = [m for cluster in report.identity_clusters for m in cluster]
    assert len(members) == len(set(members)) and set(members) <= set(patients)
    assert sum(len(c) - 1 for c in report.identity_clusters) == report.duplicate_patients
    assert 0.2 < len(report.identity_clusters) / 300 < 0.4
    assert orjson.loads((out / REPORT_FILE).read_bytes())["identity_clusters"] == [
        list(c) for c in report.identity_clusters]
    person_of = {m: c[0] for c in report.identity_clusters for m in c}
    visit_ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for obs in map(orjson.loads, _lines(out / "Observation.ndjson")):
        pid = _subject_id(obs)
        visit_ids[(person_of.get(pid, pid), obs["effectiveDateTime"])].add(pid)
    assert all(len(ids) == 1 for ids in visit_ids.values())  # a visit is at one source


def test_duplicates_carry_realistic_noise(duplicated):
    out, report = duplicated
    patients = {p["id"]: p for p in map(orjson.loads, _lines(out / "Patient.ndjson"))}
    seen: Counter = Counter()
    for original_id, *copies in report.identity_clusters:
        original = patients[original_id]
        for copy in map(patients.get, copies):
            seen["other source"] += copy["meta"].get("source") is not None
            seen["no identifier"] += "identifier" not in copy
            seen["same MRN"] += copy.get("identifier") == original["identifier"]
            seen["family differs"] += copy["name"][0]["family"] != original["name"][0]["family"]
            seen["given differs"] += copy["name"][0]["given"] != original["name"][0]["given"]
            seen["birth date differs"] += copy.get("birthDate") != original["birthDate"]
            seen["moved"] += copy.get("address", [{}])[0].get("postalCode") not in (
                None, original["address"][0]["postalCode"])
            assert copy["gender"] == original["gender"] if "gender" in copy else True
    assert all(seen[kind] > 0 for kind in ("other source", "no identifier", "same MRN",
                                           "family differs", "given differs",
                                           "birth date differs", "moved")), seen
    assert seen["family differs"] < report.duplicate_patients / 2


def test_no_duplicates_by_default(clean):
    _, report = clean
    assert report.duplicate_patients == 0 and report.identity_clusters == []
