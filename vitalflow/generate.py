"""Seeded synthetic FHIR R4 bulk export (Patient/Observation NDJSON) with known, counted defects."""

from __future__ import annotations

import gzip as gzip_module
import math
import random
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, NamedTuple

import orjson

from vitalflow.catalog import BMI, HEIGHT, LOINC, UCUM, WEIGHT, Measure, is_valid_loinc
from vitalflow.merge.duplicates import noisy_birth_date, noisy_name

# Everything is dated relative to this fixed day, never the wall clock, so output is reproducible.
REFERENCE_DATE = date(2025, 12, 31)
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
MRN_SYSTEM = "urn:vitalflow:mrn"
# A second source feeding the same export: its records carry meta.source and their own MRNs.
OTHER_SOURCE = "urn:vitalflow:source:clinic-b"
OTHER_MRN_SYSTEM = "urn:vitalflow:mrn:clinic-b"
REPORT_FILE = "_generation.json"

OBSERVATION_DEFECTS = (
    "malformed_json", "missing_subject", "unknown_code", "unknown_unit",
    "impossible_value", "duplicate", "newer_version", "orphan",
)
PATIENT_DEFECTS = ("patient_duplicate",)
DEFECT_KINDS = OBSERVATION_DEFECTS + PATIENT_DEFECTS

# Above this a clean line would need more than one defect line on average; keep it simple instead.
MAX_DEFECT_RATE = 0.5

_CHUNK_LINES = 8192
_PROGRESS_EVERY = 250
_BMI_SHARE = 0.7
_NON_CANONICAL_UNIT_SHARE = 0.15
_URN_REFERENCE_SHARE = 0.25
_AMENDED_SHARE = 0.03
_UTC_STAMPED_SHARE = 0.35
# The pipeline's dedup must keep v2, so v1 lands a few patients later in the file.
_MAX_V1_DELAY_PATIENTS = 3
_RECENT_LINES = 512
# Quarter hours 08:00-17:59 local; distinct slots keep two visits of a patient apart.
_CLINIC_SLOTS_PER_DAY = 40

# Rough WHO/CDC medians; interpolated linearly, flat after the last age.
_HEIGHT_AGES = (0, 0.25, 0.5, 1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
_HEIGHT_CM = {
    "male": (49.9, 61.4, 67.6, 75.7, 82.3, 87.1, 96.1, 103.3, 110.0, 116.0, 121.7, 127.3,
             132.6, 137.8, 143.1, 149.1, 156.2, 163.2, 169.0, 172.9, 175.2, 176.0),
    "female": (49.1, 59.8, 65.7, 74.0, 80.7, 85.7, 95.1, 102.7, 109.4, 115.1, 120.8, 126.6,
               132.5, 138.6, 144.8, 151.2, 156.4, 159.8, 161.7, 162.5, 162.9, 163.0),
}
_HEIGHT_CV = 0.04  # adult SD 7 cm / 176 cm and 6.5 / 163
_BMI_AGES = (0, 0.25, 0.5, 1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 25, 40, 60, 80, 96)
_BMI_MEDIAN = (13.4, 16.5, 17.2, 17.0, 16.3, 15.8, 15.5, 15.3, 15.3, 15.8, 16.6, 17.8, 19.0,
               20.2, 21.3, 24.0, 26.5, 27.5, 26.0, 24.5)
# Log-scale spread; adults ~0.19 so underweight through obese all show up.
_BMI_SIGMA_AGES = (0, 2, 10, 18, 30)
_BMI_SIGMA = (0.08, 0.08, 0.13, 0.17, 0.19)

_FAMILY = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
           "Rodriguez", "Martinez", "Nguyen", "Kim", "Müller", "Schmidt", "Rossi", "O'Brien",
           "Kowalski", "Andersson", "Okafor", "Patel", "Cohen", "Dubois", "Silva", "Tanaka")
_GIVEN = {
    "male": ("James", "John", "Robert", "Michael", "David", "José", "Ahmed", "Wei", "Luca",
             "Noah", "Liam", "Kofi", "Raj", "Sven", "Mateo", "Yusuf"),
    "female": ("Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "María", "Fatima", "Mei",
               "Sofia", "Emma", "Olivia", "Amara", "Priya", "Ingrid", "Zoë", "Aisha"),
}
_STREETS = ("Main St", "Oak Ave", "Maple St", "Cedar Rd", "Elm St", "Park Ave", "Washington St",
            "Lake Rd", "Hill St", "Church St", "Pine St", "River Rd", "School St", "High St")
_CITIES = (("Boston", "021"), ("Springfield", "011"), ("Worcester", "016"), ("Cambridge", "021"),
           ("Lowell", "018"), ("Providence", "029"), ("Hartford", "061"), ("Portland", "041"))
_OFFSETS_MIN = (0, 0, 60, 120, -300, -300, -360, -480, 330)

_UNIT_DISPLAY = {"[in_i]": "in", "[ft_i]": "ft", "[lb_av]": "lb", "[oz_av]": "oz"}
_DECIMALS = {"cm": 1, "m": 3, "mm": 0, "[in_i]": 2, "[ft_i]": 3,
             "kg": 1, "g": 0, "[lb_av]": 1, "[oz_av]": 1, "kg/m2": 2}
# Weighted by repetition: inches dominate US feeds, grams and ounces are for infants.
_HEIGHT_ALTERNATES = ("[in_i]",) * 5 + ("m",) * 3 + ("[ft_i]", "mm")
_WEIGHT_ALTERNATES = ("[lb_av]",) * 5 + ("g",)
_INFANT_WEIGHT_ALTERNATES = ("g", "g", "[lb_av]", "[oz_av]")
_INFANT_KG = 10.0

# Non-convertible units: value scale factor from canonical, and the unit string used.
_ODD_UNITS = {
    HEIGHT.code: (("furlong", 1 / 20116.8, 6), ("hand", 1 / 10.16, 1)),
    WEIGHT.code: (("stone", 1 / 6.35029318, 2),),
    BMI.code: (("lb/in2", 1 / 703.06958, 4),),
}


@dataclass
class GenerationReport:
    """Ground truth for one generated export."""

    patients: int  # Patient lines written (including defective/duplicate lines)
    observations: int  # Observation lines written (including defective/duplicate lines)
    defects: dict[str, int]  # defect kind -> number of lines carrying it
    files: list[str]  # NDJSON paths written, relative to the output directory
    duplicate_patients: int = 0  # Patient records of an already written person, new id
    # Ground truth for merging: per person with duplicates, the ids of all its Patient records
    # (the original first); every other Patient id is a person of its own.
    identity_clusters: list[list[str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class _Person(NamedTuple):
    id: str
    gender: str
    curve: str  # which growth table; "other"/"unknown" genders still need one
    birth: int  # date ordinal
    death: int | None  # date ordinal
    end: int  # last day a visit may fall on
    offset: int  # local UTC offset in minutes
    height_z: float
    bmi_z: float


class _Obs(NamedTuple):
    id: str
    version: str
    last_updated: str
    status: str
    code: str
    subject: str | None
    effective: str
    value: float
    unit: str


_UUID_TEMPLATE = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"


def _uuid4(rng: random.Random) -> str:
    # Same result as str(uuid.UUID(int=..., version=4)) at a fraction of the cost.
    bits = rng.getrandbits(128)
    bits = (bits & ~(0xF000 << 64)) | (0x4000 << 64)
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _interpolate(xs: tuple, ys: tuple, x: float) -> float:
    i = bisect_right(xs, x)
    if i >= len(xs):
        return ys[-1]
    if i == 0:
        return ys[0]
    x0, x1 = xs[i - 1], xs[i]
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - x0) / (x1 - x0)


def _clamped_gauss(rng: random.Random, limit: float = 3.0) -> float:
    # Clamping keeps every clean value inside the catalog's plausible range.
    return max(-limit, min(limit, rng.gauss(0.0, 1.0)))


def _offset_text(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def _timestamp(ordinal: int, minute: int, second: int, suffix: str) -> str:
    day, minute = divmod(minute, 1440)
    return (f"{date.fromordinal(ordinal + day).isoformat()}"
            f"T{minute // 60:02d}:{minute % 60:02d}:{second:02d}{suffix}")


def _new_person(rng: random.Random) -> _Person:
    sex_roll = rng.random()
    gender = "male" if sex_roll < 0.49 else "female" if sex_roll < 0.98 else (
        "other" if sex_roll < 0.99 else "unknown")
    curve = gender if gender in _HEIGHT_CM else rng.choice(("male", "female"))
    # Fewer very old people than a uniform spread; day 1 minimum keeps a clinic day before the end.
    years = 75 if rng.random() < 0.85 else 96
    low = 1 if years == 75 else 75 * 365
    age_days = rng.randrange(low, years * 365)
    reference = REFERENCE_DATE.toordinal()
    birth = reference - age_days
    end = reference - 1  # a visit late on the 31st at -08:00 would be 2026 in UTC
    death = None
    if rng.random() < 0.01 + 0.08 * age_days / (96 * 365):
        death = rng.randint(max(birth, reference - 5 * 365), reference - 1)
        end = death
    return _Person(_uuid4(rng), gender, curve, birth, death, end, rng.choice(_OFFSETS_MIN),
                   _clamped_gauss(rng), _clamped_gauss(rng))


def _address(rng: random.Random) -> dict:
    city, zip_prefix = rng.choice(_CITIES)
    return {"use": "home", "line": [f"{rng.randint(1, 999)} {rng.choice(_STREETS)}"],
            "city": city, "postalCode": f"{zip_prefix}{rng.randrange(100):02d}", "country": "US"}


def _patient_resource(rng: random.Random, person: _Person, mrn: str) -> dict:
    given_pool = _GIVEN.get(person.gender) or _GIVEN[person.curve]
    resource = {
        "resourceType": "Patient",
        "id": person.id,
        "meta": {"versionId": "1", "lastUpdated": _timestamp(
            REFERENCE_DATE.toordinal(), rng.randrange(1440), rng.randrange(60), "Z")},
        "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
        "name": [{"use": "official", "family": rng.choice(_FAMILY),
                  "given": [rng.choice(given_pool)]}],
        "gender": person.gender,
        "birthDate": date.fromordinal(person.birth).isoformat(),
        "address": [_address(rng)],
    }
    if person.death is not None:
        # After 18:00 local, later than any clinic slot, so no visit follows death.
        minute = 18 * 60 + rng.randrange(360)
        resource["deceasedDateTime"] = _timestamp(
            person.death, minute, rng.randrange(60), _offset_text(person.offset))
    return resource


def _visit_slots(rng: random.Random, person: _Person, visits: int) -> list[tuple[int, int]]:
    span_days = int(rng.uniform(2, 10) * 365)
    start = max(person.birth, person.end - span_days)
    days = person.end - start + 1
    count = min(rng.randint(1, 2 * visits - 1), days * _CLINIC_SLOTS_PER_DAY)
    slots = sorted(rng.sample(range(days * _CLINIC_SLOTS_PER_DAY), count))
    return [(start + slot // _CLINIC_SLOTS_PER_DAY,
             8 * 60 + (slot % _CLINIC_SLOTS_PER_DAY) * 15 + rng.randrange(15)) for slot in slots]


def _in_unit(rng: random.Random, measure: Measure, canonical: float,
             alternates: tuple[str, ...]) -> tuple[float, str]:
    unit = measure.unit
    if rng.random() < _NON_CANONICAL_UNIT_SHARE:
        unit = rng.choice(alternates)
    decimals = _DECIMALS[unit]
    if unit == "kg" and canonical < _INFANT_KG:
        decimals = 2
    return round(canonical / measure.factors[unit], decimals), unit


def _observations(rng: random.Random, person: _Person, visits: int) -> Iterator[_Obs]:
    """Height, weight and usually BMI per visit, each with its own reference style and unit."""
    local_offset = _offset_text(person.offset)
    drift = 0.0
    for day, minute in _visit_slots(rng, person, visits):
        age = (day - person.birth) / 365.25
        second = rng.randrange(60)
        # The same instant, either in local time or converted to UTC.
        if rng.random() < _UTC_STAMPED_SHARE:
            effective = _timestamp(day, minute - person.offset, second, "+00:00")
        else:
            effective = _timestamp(day, minute, second, local_offset)
        last_updated = _timestamp(day, minute - person.offset + rng.randint(5, 2880),
                                  rng.randrange(60), "Z")

        true_height = _interpolate(_HEIGHT_AGES, _HEIGHT_CM[person.curve], age) * (
            1 + _HEIGHT_CV * person.height_z)
        drift += rng.gauss(0.0, 0.02)
        bmi = _interpolate(_BMI_AGES, _BMI_MEDIAN, age) * math.exp(
            _interpolate(_BMI_SIGMA_AGES, _BMI_SIGMA, age) * person.bmi_z + drift)
        weight = bmi * (true_height / 100) ** 2
        measured_height = true_height + rng.gauss(0.0, 0.3)

        height_value, height_unit = _in_unit(rng, HEIGHT, measured_height, _HEIGHT_ALTERNATES)
        weight_value, weight_unit = _in_unit(
            rng, WEIGHT, weight,
            _INFANT_WEIGHT_ALTERNATES if weight < _INFANT_KG else _WEIGHT_ALTERNATES)
        measured = [(HEIGHT.code, height_value, height_unit),
                    (WEIGHT.code, weight_value, weight_unit)]
        if rng.random() < _BMI_SHARE:
            # From the values as written, so a consumer recomputing BMI gets the same number.
            metres = height_value * HEIGHT.factors[height_unit] / 100
            kilograms = weight_value * WEIGHT.factors[weight_unit]
            measured.append((BMI.code, round(kilograms / metres**2, 2), BMI.unit))

        for code, value, unit in measured:
            prefix = "urn:uuid:" if rng.random() < _URN_REFERENCE_SHARE else "Patient/"
            status = "amended" if rng.random() < _AMENDED_SHARE else "final"
            yield _Obs(_uuid4(rng), "1", last_updated, status, code, prefix + person.id,
                       effective, value, unit)


@lru_cache(maxsize=64)
def _concept(code: str, display: str) -> dict:
    # Shared across records; orjson serialises the same dict object many times cheaply.
    return {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display}


_CATEGORY = [{"coding": [{"system": CATEGORY_SYSTEM, "code": "vital-signs",
                          "display": "Vital Signs"}]}]
_MEASURES = {m.code: m for m in (HEIGHT, WEIGHT, BMI)}


def _observation_resource(obs: _Obs, measure: Measure) -> dict:
    resource = {
        "resourceType": "Observation",
        "id": obs.id,
        "meta": {"versionId": obs.version, "lastUpdated": obs.last_updated},
        "status": obs.status,
        "category": _CATEGORY,
        "code": _concept(obs.code, measure.display),
        "subject": {"reference": obs.subject},
        "effectiveDateTime": obs.effective,
        "valueQuantity": {"value": obs.value, "unit": _UNIT_DISPLAY.get(obs.unit, obs.unit),
                          "system": UCUM, "code": obs.unit},
    }
    if obs.subject is None:
        del resource["subject"]
    return resource


def _dumps(obs: _Obs, measure: Measure | None = None) -> bytes:
    return orjson.dumps(_observation_resource(obs, measure or _MEASURES[obs.code]))


class _LineWriter:
    """Buffered NDJSON writer; gzip gets a zero mtime and no file name so bytes are reproducible."""

    def __init__(self, path: Path, compress: bool, stack: ExitStack):
        raw = stack.enter_context(open(path, "wb"))
        self._file: BinaryIO = raw
        if compress:
            self._file = stack.enter_context(
                gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                     compresslevel=6))
        stack.callback(self.flush)  # runs before the files close (LIFO)
        self._buffer: list[bytes] = []
        self.lines = 0

    def add(self, line: bytes) -> None:
        self._buffer.append(line)
        if len(self._buffer) >= _CHUNK_LINES:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._file.write(b"\n".join(self._buffer) + b"\n")
            self.lines += len(self._buffer)
            self._buffer.clear()


class _DefectInjector:
    """Adds defect lines next to clean ones, from its own RNG so clean content ignores the rate."""

    def __init__(self, rng: random.Random, rate: float):
        self._rng = rng
        # Defect lines are extra lines, so per clean line the odds are r/(1-r) to make up r of all.
        self._observation_odds = rate / (1 - rate)
        patient_rate = rate / 4
        self._patient_odds = patient_rate / (1 - patient_rate)
        self.counts = dict.fromkeys(DEFECT_KINDS, 0)
        self._recent_observations: deque[bytes] = deque(maxlen=_RECENT_LINES)
        self._recent_patients: deque[bytes] = deque(maxlen=_RECENT_LINES)
        self._deferred: list[tuple[int, bytes]] = []

    def patient(self, line: bytes, out: _LineWriter) -> None:
        out.add(line)
        if not self._patient_odds:
            return
        self._recent_patients.append(line)
        if self._rng.random() < self._patient_odds:
            out.add(self._rng.choice(self._recent_patients))
            self.counts["patient_duplicate"] += 1

    def observation(self, obs: _Obs, out: _LineWriter, patient_index: int) -> None:
        measure = _MEASURES[obs.code]
        line = _dumps(obs, measure)
        if not self._observation_odds or self._rng.random() >= self._observation_odds:
            out.add(line)
            self._recent_observations.append(line)
            return
        kind = self._rng.choice(OBSERVATION_DEFECTS)
        if kind == "duplicate" and not self._recent_observations:
            kind = "malformed_json"
        self.counts[kind] += 1
        if kind == "newer_version":
            out.add(_dumps(self._newer_version(obs), measure))
            delay = self._rng.randint(1, _MAX_V1_DELAY_PATIENTS)
            self._deferred.append((patient_index + delay, line))
            return
        if kind == "duplicate":
            out.add(self._rng.choice(self._recent_observations))
        else:
            out.add(self._damaged(kind, obs, measure))
        out.add(line)
        self._recent_observations.append(line)

    def release(self, patient_index: int, out: _LineWriter) -> None:
        """Write held-back version-1 lines whose delay has passed."""
        if not self._deferred:
            return
        keep = []
        for due, line in self._deferred:
            if due <= patient_index:
                out.add(line)
            else:
                keep.append((due, line))
        self._deferred = keep

    def release_all(self, out: _LineWriter) -> None:
        for _, line in self._deferred:
            out.add(line)
        self._deferred = []

    def _newer_version(self, obs: _Obs) -> _Obs:
        change = self._rng.uniform(0.005, 0.03) * self._rng.choice((-1, 1))
        decimals = _DECIMALS[obs.unit] + (1 if obs.unit == "kg" and obs.value < _INFANT_KG else 0)
        value = round(obs.value * (1 + change), decimals)
        if value == obs.value:
            value = round(value + 10**-decimals, decimals)
        return obs._replace(version="2", status="amended", value=value,
                            last_updated=self._later(obs.last_updated))

    def _later(self, timestamp: str) -> str:
        day = date.fromisoformat(timestamp[:10]).toordinal()
        minute = int(timestamp[11:13]) * 60 + int(timestamp[14:16])
        return _timestamp(day + self._rng.randint(1, 30), minute + self._rng.randrange(1440),
                          self._rng.randrange(60), "Z")

    def _damaged(self, kind: str, obs: _Obs, measure: Measure) -> bytes:
        # A fresh id, so a quarantined record never shares an id with a refined one.
        obs = obs._replace(id=_uuid4(self._rng))
        if kind == "malformed_json":
            return self._malformed(_dumps(obs, measure))
        if kind == "missing_subject":
            obs = obs._replace(subject=None)
        elif kind == "unknown_code":
            obs = obs._replace(code=self._bad_check_digit(obs.code))
        elif kind == "unknown_unit":
            unit, scale, decimals = self._rng.choice(_ODD_UNITS[obs.code])
            canonical = obs.value * measure.factors[obs.unit]
            obs = obs._replace(unit=unit, value=round(canonical * scale, decimals))
        elif kind == "impossible_value":
            obs = obs._replace(value=self._impossible(obs, measure))
        elif kind == "orphan":
            reference_style = obs.subject[: -len(_UUID_TEMPLATE)]
            obs = obs._replace(subject=reference_style + _uuid4(self._rng))
        return _dumps(obs, measure)

    def _malformed(self, line: bytes) -> bytes:
        style = self._rng.randrange(4)
        if style == 0:
            bad = line[: self._rng.randint(len(line) // 4, len(line) - 2)]  # truncated write
        elif style == 1:
            bad = line.replace(b'":', b'" ', 1)  # lost a colon
        elif style == 2:
            bad = line + b"}"  # trailing garbage
        else:
            bad = line.replace(b'"', b"'")  # not JSON quoting
        try:
            orjson.loads(bad)
        except orjson.JSONDecodeError:
            return bad
        return line[:-1]

    def _bad_check_digit(self, code: str) -> str:
        number, digit = code.split("-")
        bad = f"{number}-{(int(digit) + self._rng.randint(1, 9)) % 10}"
        assert not is_valid_loinc(bad)
        return bad

    def _impossible(self, obs: _Obs, measure: Measure) -> float:
        canonical = obs.value * measure.factors[obs.unit]
        candidates = {
            HEIGHT.code: (900.0, 0.0, -canonical, canonical * 10),  # last: mm typed into a cm field
            WEIGHT.code: (-canonical, 0.0, canonical * 1000 + 700),
            BMI.code: (0.0, -canonical, 900.0),
        }[obs.code]
        bad_canonical = self._rng.choice(candidates)
        value = round(bad_canonical / measure.factors[obs.unit], _DECIMALS[obs.unit] + 1)
        checked = measure.to_canonical(value, obs.unit)
        assert checked is not None and not measure.low <= checked <= measure.high
        return value


class _Duplicates:
    """Extra Patient records of some persons, as re-entered at the same source or sent by a
    second one, with data-entry noise; from its own RNG so the other records do not change."""

    def __init__(self, rng: random.Random, share: float):
        self._rng = rng
        self._share = share
        self.records = 0
        self.clusters: list[list[str]] = []
        self._ids: list[str] = []
        self._visit = ""
        self._visit_id = ""

    def add(self, original: dict, person_index: int, out: Callable[[bytes], None]) -> None:
        """Write the duplicates of this person (often none); observations follow (subject)."""
        self._ids = []
        if not self._share or self._rng.random() >= self._share:
            return
        copies = [self._copy(original, person_index)
                  for _ in range(2 if self._rng.random() < 0.15 else 1)]
        for copy in copies:
            out(orjson.dumps(copy))
        self._ids = [original["id"], *(copy["id"] for copy in copies)]
        self.clusters.append(self._ids)
        self.records += len(copies)

    def subject(self, obs: _Obs) -> _Obs:
        """Each visit of a person with duplicates is recorded under one of its records' ids."""
        if not self._ids or obs.subject is None:
            return obs
        if obs.effective != self._visit:
            self._visit, self._visit_id = obs.effective, self._rng.choice(self._ids)
        return obs._replace(subject=obs.subject[:-len(self._visit_id)] + self._visit_id)

    def _copy(self, original: dict, person_index: int) -> dict:
        rng = self._rng
        copy = orjson.loads(orjson.dumps(original))
        copy["id"] = _uuid4(rng)
        copy["meta"]["lastUpdated"] = _timestamp(
            REFERENCE_DATE.toordinal() - rng.randint(1, 3 * 365), rng.randrange(1440),
            rng.randrange(60), "Z")
        roll = rng.random()
        if rng.random() < 0.5:
            copy["meta"]["source"] = OTHER_SOURCE
            copy["identifier"] = [{"system": OTHER_MRN_SYSTEM, "value": f"B{person_index:08d}"}]
            if roll < 0.2:
                del copy["identifier"]
        elif roll < 0.35:
            del copy["identifier"]  # re-entered without the MRN at hand
        elif roll < 0.65:
            copy["identifier"] = [{"system": MRN_SYSTEM, "value": f"R{rng.randrange(10**8):08d}"}]
        name = copy["name"][0]
        name["given"] = [noisy_name(rng, name["given"][0], nickname_share=0.05)]
        name["family"] = noisy_name(rng, name["family"])
        birth = noisy_birth_date(rng, date.fromisoformat(copy["birthDate"]), REFERENCE_DATE)
        if birth is None:
            del copy["birthDate"]
        else:
            copy["birthDate"] = birth.isoformat()
        if rng.random() < 0.02:
            del copy["gender"]
        roll = rng.random()
        if roll < 0.25:
            copy["address"] = [_address(rng)]  # moved
        elif roll < 0.33:
            del copy["address"]
        return copy


def _validate(patients: int, defect_rate: float, visits: int,
              duplicate_share: float = 0.0) -> None:
    if patients < 0:
        raise ValueError(f"patients must be >= 0, got {patients}")
    if visits < 1:
        raise ValueError(f"visits must be >= 1, got {visits}")
    if not 0.0 <= defect_rate <= MAX_DEFECT_RATE:
        raise ValueError(f"defect_rate must be within [0, {MAX_DEFECT_RATE}], got {defect_rate}")
    if not 0.0 <= duplicate_share <= 1.0:
        raise ValueError(f"duplicate_share must be within [0, 1], got {duplicate_share}")


def generate(out_dir: Path, patients: int, *, seed: int = 0, defect_rate: float = 0.02,
             visits: int = 6, gzip: bool = False, duplicate_share: float = 0.0,
             progress: Callable[[int], None] | None = None) -> GenerationReport:
    """Write Patient and Observation NDJSON plus `_generation.json`; same arguments, same bytes.

    Each patient gets 1..2*visits-1 visits (mean `visits`). Defect lines are added on top of the
    clean lines, so the records a correct pipeline keeps number
    `observations - sum(observation defects)` and `patients - patient_duplicate`.
    `duplicate_share` of persons get one or two more Patient records under new ids (same or
    second source, typos, nicknames, moves, lost identifiers; see vitalflow.merge.duplicates);
    their visits reference any of their ids, and `identity_clusters` in the report says which
    ids are one person. Records of other persons and all measurements stay the same.
    `progress` receives the number of patients done, every few hundred patients and at the end.
    """
    _validate(patients, defect_rate, visits, duplicate_share)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".ndjson.gz" if gzip else ".ndjson"
    files = [f"Patient{suffix}", f"Observation{suffix}"]
    rng = random.Random(seed)
    defects = _DefectInjector(random.Random(f"vitalflow-defects:{seed}"), defect_rate)
    duplicates = _Duplicates(random.Random(f"vitalflow-duplicates:{seed}"), duplicate_share)
    mrn_base = rng.randrange(10**8)

    with ExitStack() as stack:
        patient_out = _LineWriter(out_dir / files[0], gzip, stack)
        observation_out = _LineWriter(out_dir / files[1], gzip, stack)
        for index in range(patients):
            person = _new_person(rng)
            # 7919 is coprime with 10**8, so MRNs are unique for any realistic patient count.
            mrn = f"MRN{(mrn_base + index * 7919) % 10**8:08d}"
            resource = _patient_resource(rng, person, mrn)
            defects.patient(orjson.dumps(resource), patient_out)
            duplicates.add(resource, index, lambda line: defects.patient(line, patient_out))
            for obs in _observations(rng, person, visits):
                defects.observation(duplicates.subject(obs), observation_out, index)
            defects.release(index, observation_out)
            if progress is not None and (index + 1) % _PROGRESS_EVERY == 0:
                progress(index + 1)
        defects.release_all(observation_out)
    if progress is not None and patients % _PROGRESS_EVERY:
        progress(patients)

    report = GenerationReport(patient_out.lines, observation_out.lines, defects.counts, files,
                              duplicates.records, duplicates.clusters)
    (out_dir / REPORT_FILE).write_bytes(
        orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    return report
