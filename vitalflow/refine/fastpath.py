"""A fast decoder for well-formed records; anything unusual falls back to the full checks."""

from __future__ import annotations

from datetime import datetime

import msgspec

from vitalflow.catalog import LOINC, Measure
from vitalflow.refine.rules import (OBSERVATION_STATUSES, canonical_value, check_not_future,
                                          latest_effective, meta_values, parse_datetime, patient_key_of,
                                          patient_row)


class _Coding(msgspec.Struct):
    system: str | None = None
    code: str | None = None


class _Concept(msgspec.Struct):
    coding: list[_Coding] = []


class _Reference(msgspec.Struct):
    reference: str | None = None


class _Quantity(msgspec.Struct):
    value: float | None = None
    unit: str | None = None
    system: str | None = None
    code: str | None = None


class _Meta(msgspec.Struct):
    versionId: str | None = None  # noqa: N815 - FHIR's name
    lastUpdated: str | None = None  # noqa: N815


class Observation(msgspec.Struct, tag_field="resourceType", tag="Observation"):
    id: str
    status: str
    code: _Concept
    subject: _Reference
    effectiveDateTime: str  # noqa: N815
    valueQuantity: _Quantity  # noqa: N815
    meta: _Meta | None = None


class Patient(msgspec.Struct, tag_field="resourceType", tag="Patient"):
    id: str
    gender: str | None = None
    birthDate: str | None = None  # noqa: N815
    deceasedDateTime: str | None = None  # noqa: N815
    meta: _Meta | None = None


# Raises msgspec.DecodeError for anything else; refine/columnar.py reads Observations as columns.
decode_resource = msgspec.json.Decoder(Observation | Patient).decode


class FastPath:
    """Decodes the common shapes straight into row tuples (same rows as the full checks).

    decode() returns ("Observation" | "Patient", row) or None, and None means: use the full
    checks, which also produce the quarantine or filter reason.
    """

    def __init__(self, scope: dict[str, Measure], excluded_statuses: frozenset[str],
                 latest: datetime | None = None) -> None:
        self.scope = scope
        self.statuses = OBSERVATION_STATUSES - excluded_statuses
        self.latest = latest or latest_effective()  # later effective times are implausible

    def decode(self, text: bytes) -> tuple[str, tuple] | None:
        try:
            resource = decode_resource(text)
            if type(resource) is Observation:
                return self._observation(resource)
            return self.patient(resource)
        # Anything unusual, expected or not, goes to the full checks, which name the reason.
        except Exception:  # noqa: BLE001
            return None

    def _observation(self, obs: Observation) -> tuple[str, tuple] | None:
        if obs.status not in self.statuses or not obs.id.strip():
            return None
        for coding in obs.code.coding:
            if coding.system == LOINC and coding.code in self.scope:
                measure, code = self.scope[coding.code], coding.code
                break
        else:
            return None
        canonical, source_unit = canonical_value(
            measure, obs.valueQuantity.value, obs.valueQuantity.system,
            obs.valueQuantity.code, obs.valueQuantity.unit)
        version, updated = meta_values(obs.meta and obs.meta.versionId,
                                       obs.meta and obs.meta.lastUpdated)
        return "Observation", (obs.id, patient_key_of(obs.subject.reference), measure.name,
                               LOINC, code, canonical, measure.unit, obs.valueQuantity.value,
                               source_unit,
                               check_not_future(parse_datetime(obs.effectiveDateTime,
                                                               "effectiveDateTime"),
                                                self.latest),
                               obs.status, version, updated)

    def patient(self, patient: Patient) -> tuple[str, tuple]:
        meta = patient.meta
        return "Patient", patient_row(patient.id, patient.gender, patient.birthDate,
                                      patient.deceasedDateTime,
                                      *meta_values(meta and meta.versionId,
                                                   meta and meta.lastUpdated))
