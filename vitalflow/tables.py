"""Tables described as data: one description drives DDL, validation and documentation."""

from __future__ import annotations

from dataclasses import replace

from storage_backends.schema import Column, Index, Pii, Table


C = Column
_LINEAGE = (
    C("version", "int", "meta.versionId of the source resource (null when absent)"),
    C("last_updated", "timestamp", "meta.lastUpdated of the source resource"),
    C("content_hash", "text", "hash of the raw record text; equal hashes are exact duplicates",
      nullable=False),
    C("raw_record_id", "text", "raw-layer record this row came from", nullable=False),
    C("change_seq", "int", "increases on every insert or update; drives incremental derive",
      nullable=False),
    C("refined_at", "timestamp", "when this row was last written", nullable=False),
)

PATIENT = Table(
    "refined", "patient", "One row per patient: demographics needed for derived metrics.",
    owner="refine",
    columns=(
        C("patient_key", "text", "pseudonym of the source Patient record (HMAC-SHA256 of its "
          "id, docs/privacy.md)", nullable=False, pii=Pii.PSEUDONYM),
        C("gender", "text", "administrative gender: male, female, other, unknown"),
        C("birth_date", "date", "date of birth, generalised per privacy.birth_date (default: "
          "1 January of the year)", pii=Pii.QUASI),
        C("deceased_at", "timestamp", "time of death when known", pii=Pii.QUASI),
        *_LINEAGE,
        C("person_key", "text", "pseudonym of the person this record belongs to after record "
          "merging (docs/merging.md); its own person when merging is off", nullable=False,
          pii=Pii.PSEUDONYM),
    ),
    primary_key=("patient_key",),
    # Derive finds changed rows by change_seq (it grows with insertion order: BRIN costs a
    # fraction of a B-tree's writes) and gathers each person's records.
    indexes=(Index(("change_seq",), "brin"), Index(("person_key",))),
)

OBSERVATION = Table(
    "refined", "observation", "Body height, weight and BMI observations in canonical UCUM units.",
    owner="refine",
    columns=(
        C("observation_id", "text", "the source Observation.id", nullable=False),
        C("patient_key", "text", "patient the observation is about", nullable=False,
          pii=Pii.PSEUDONYM),
        C("measure", "text", "body_height, body_weight or bmi", nullable=False),
        C("code_system", "text", "code system of the code (LOINC)", nullable=False),
        C("code", "text", "LOINC code", nullable=False),
        C("value", "float", "value in the canonical unit", nullable=False, unit="see unit"),
        C("unit", "text", "canonical UCUM unit: cm, kg or kg/m2", nullable=False),
        C("source_value", "float", "value as sent"),
        C("source_unit", "text", "UCUM unit as sent"),
        C("effective_at", "timestamp", "when the measurement was taken", nullable=False),
        C("status", "text", "FHIR observation status", nullable=False),
        *_LINEAGE,
        C("code_system_version", "text", "version of the code system the terminology server "
          "validated the code against"),
        C("mapping_equivalence", "text", "ConceptMap equivalence when the code was translated "
          "from a feeder system's code (null when sent as LOINC)"),
        C("source_coding", "text", "the feeder coding as sent (system|code) when translated"),
    ),
    primary_key=("observation_id",),
    # Derive reads one person's few dozen observations at a time: the patient key alone is
    # selective enough, and a narrow index is cheaper to maintain.
    indexes=(Index(("patient_key",)), Index(("change_seq",), "brin")),
)

QUARANTINE = Table(
    "refined", "quarantine", "Records that failed standardisation or validation, with why.",
    owner="refine",
    columns=(
        C("raw_record_id", "text", "the quarantined raw record", nullable=False),
        C("batch_id", "text", "raw batch of the record", nullable=False),
        C("resource_type", "text", "resourceType when it could be read"),
        C("resource_id", "text", "resource id (Observations only: Patient ids are identifiers)"),
        C("reason", "text", "machine-readable reason code (vitalflow.reasons)", nullable=False),
        C("detail", "text", "human-readable detail; never contains patient identifiers"),
        C("quarantined_at", "timestamp", "when it was quarantined", nullable=False),
    ),
    primary_key=("raw_record_id",),
)

PATIENT_BMI_LATEST = Table(
    "derived", "patient_bmi_latest",
    "Per patient: latest weight, the latest height within the window before it, BMI and WHO "
    "category.",
    owner="derive_patient_bmi",
    columns=(
        C("patient_key", "text", "the person (refined.patient.person_key): metrics over all "
          "records merged into one person", nullable=False, pii=Pii.PSEUDONYM),
        C("sex", "text", "administrative gender"),
        C("height_cm", "float", "latest height within the window before the weight", unit="cm"),
        C("height_observation_id", "text", "observation the height came from"),
        C("height_at", "timestamp", "when the height was measured"),
        C("weight_kg", "float", "latest weight", nullable=False, unit="kg"),
        C("weight_observation_id", "text", "observation the weight came from", nullable=False),
        C("weight_at", "timestamp", "when the weight was measured", nullable=False),
        C("bmi", "float", "weight_kg / (height_cm/100)^2, null without a height", unit="kg/m2"),
        C("weight_category", "text", "WHO adult category (underweight, normal, overweight, "
          "obese); 'not_classified_under_18' for children; 'unknown' without BMI",
          nullable=False),
        C("age_years", "int", "completed years of age at the weight measurement", unit="a",
          pii=Pii.QUASI),
        C("computed_at", "timestamp", "when this row was last (re)written", nullable=False),
    ),
    primary_key=("patient_key",),
)

AGE_BAND_SUMMARY = Table(
    "derived", "age_band_summary", "Patients per age band x sex x weight category, with mean BMI.",
    owner="derive_age_band_summary",
    columns=(
        C("age_band", "text", "age band label, e.g. '18-29' or '80+'", nullable=False),
        C("sex", "text", "administrative gender ('unknown' when absent)", nullable=False),
        C("weight_category", "text", "as in patient_bmi_latest", nullable=False),
        C("patients", "int", "number of patients", nullable=False),
        C("mean_bmi", "float", "mean BMI of those patients", unit="kg/m2"),
        C("computed_at", "timestamp", "when this row was last (re)written", nullable=False),
    ),
    primary_key=("age_band", "sex", "weight_category"),
)

OBSERVATION_PENDING = replace(
    OBSERVATION, name="observation_pending",
    description="Observations whose patient is not (yet) refined; promoted when it arrives.",
    indexes=(Index(("patient_key",)),))

REFINED_TABLES = (PATIENT, OBSERVATION, QUARANTINE, OBSERVATION_PENDING)
DERIVED_TABLES = (PATIENT_BMI_LATEST, AGE_BAND_SUMMARY)
ALL_TABLES = REFINED_TABLES + DERIVED_TABLES
