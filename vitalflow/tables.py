"""Tables described as data: one description drives DDL, validation and documentation."""

from __future__ import annotations

from dataclasses import dataclass, replace

from storage_backends.schema import Column, Index, Pii, Table


@dataclass(frozen=True)
class Layer:
    """A schema (layer) as people see it: what it holds and who may read it."""

    name: str
    description: str
    access: str  # who may read it, and how
    restricted: bool = False  # listed with its access rules only, never its columns or values


LAYERS = (
    Layer("raw", "Every input record as it arrived, one immutable batch per input file content.",
          "the pipeline's operating-system user (Parquet files) or the catalog owner (Iceberg); "
          "raw text holds names and identifiers, so analysts never read it"),
    Layer("refined", "Standardised, validated, pseudonymised records: one row per current "
          "version of each resource, with quarantine.",
          "role vitalflow_analyst reads every table (SELECT); only the refine flow writes"),
    Layer("derived", "Metrics computed from refined: latest BMI per person, summaries.",
          "role vitalflow_analyst reads every table (SELECT); each table has one owning flow, "
          "enforced by a trigger (meta.table_owner)"),
    Layer("meta", "The control database's ledger: runs, refined batches, watermarks, ownership, "
          "terminology cache.", "the pipeline's database owner; analysts have no grant"),
    Layer("identity", "Restricted: the pseudonym -> source identity mapping, key ids, record "
          "merging and the audit trail (identity.reidentification_log, identity.rekey_log).",
          "no grant to vitalflow_analyst; vitalflow_reidentifier may only EXECUTE "
          "identity.reidentify(pseudonym, reason, requested_by), which writes an audit row "
          "first; the database owner (pipeline) reads and writes", restricted=True),
)

C = Column
RAW_JSON = "raw.record.raw_json"
LOINC_VITALS = "http://hl7.org/fhir/ValueSet/observation-vitalsignresult"
UCUM_UNITS = "http://hl7.org/fhir/ValueSet/ucum-units"
GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"
REASONS = "vitalflow reason codes (vitalflow.reasons; whitelist:<rule> from the whitelist)"


def _lineage(resource: str) -> tuple[Column, ...]:
    """Columns every refined table keeps about where its row came from."""
    return (
        C("version", "int", "meta.versionId of the source resource (null when absent)",
          unit="{version}", pii=Pii.NONE, fhir_source=f"{resource}.meta.versionId",
          upstream=(RAW_JSON,)),
        C("last_updated", "timestamp", "meta.lastUpdated of the source resource", pii=Pii.NONE,
          fhir_source=f"{resource}.meta.lastUpdated", upstream=(RAW_JSON,)),
        C("content_hash", "text", "hash of the raw record text; equal hashes are exact "
          "duplicates", nullable=False, pii=Pii.NONE, upstream=(RAW_JSON,)),
        C("raw_record_id", "text", "raw-layer record this row came from", nullable=False,
          pii=Pii.RECORD_ID, upstream=("raw.record.raw_record_id",),
          references="raw.record.raw_record_id"),
        C("change_seq", "int", "increases on every insert or update; drives incremental derive",
          nullable=False, unit="{sequence}", pii=Pii.NONE),
        C("refined_at", "timestamp", "when this row was last written", nullable=False,
          pii=Pii.NONE),
    )


RAW_RECORD = Table(
    "raw", "record", "Every input record as it arrived, one batch per input file content; "
    "never changed.", owner="ingest",
    columns=(
        C("raw_record_id", "text", "<batch_id>-<record_number>: deterministic id of the record",
          nullable=False, pii=Pii.RECORD_ID),
        C("batch_id", "text", "the batch (file content) the record belongs to", nullable=False,
          pii=Pii.NONE, references="raw.batch.batch_id"),
        C("source_uri", "text", "where the file was read from", nullable=False, pii=Pii.NONE),
        C("record_number", "int", "line number (NDJSON) or entry number (Bundle)",
          nullable=False, unit="{record}", pii=Pii.NONE),
        C("raw_json", "text", "the record's text, untouched (Bundle entries as compact JSON)",
          pii=Pii.DIRECT, fhir_source="the whole resource"),
        C("raw_bytes", "binary", "the record's bytes, only when they are not valid UTF-8",
          pii=Pii.DIRECT),
    ),
    primary_key=("raw_record_id",),
)

RAW_BATCH = Table(
    "raw", "batch", "Manifest of raw batches, one row per ingested file content; written after "
    "the batch's records, so a row here is the batch's commit point.", owner="ingest",
    columns=(
        C("batch_id", "text", "first 32 hex digits of the file's SHA-256", nullable=False,
          pii=Pii.NONE),
        C("file_sha256", "text", "SHA-256 of the file", nullable=False, pii=Pii.NONE),
        C("size_bytes", "int", "file size", nullable=False, unit="By", pii=Pii.NONE),
        C("records", "int", "records in the batch", nullable=False, unit="{record}",
          pii=Pii.NONE),
        C("blank_lines", "int", "blank lines skipped", nullable=False, unit="{line}",
          pii=Pii.NONE),
        C("format", "text", "ndjson, bundle, json or binary", nullable=False, pii=Pii.NONE),
        C("resource_type_hint", "text", "resource type from a bulk-export file name",
          pii=Pii.NONE),
        C("source_uri", "text", "where the file was read from", nullable=False, pii=Pii.NONE),
        C("ingested_at", "timestamp", "when the batch was committed", nullable=False,
          pii=Pii.NONE),
        C("ingested_by", "text", "user who ingested it (staff, not a patient)", nullable=False,
          pii=Pii.QUASI),
        C("vitalflow_version", "text", "vitalflow version that ingested it", nullable=False,
          pii=Pii.NONE),
    ),
    primary_key=("batch_id",),
    freshness="ingested_at",
)

PATIENT = Table(
    "refined", "patient", "One row per patient: demographics needed for derived metrics.",
    owner="refine",
    columns=(
        C("patient_key", "text", "pseudonym of the source Patient record (HMAC-SHA256 of its "
          "id, docs/privacy.md)", nullable=False, pii=Pii.PSEUDONYM,
          fhir_source="Patient.id, pseudonymised", upstream=(RAW_JSON,)),
        C("gender", "text", "administrative gender: male, female, other, unknown", pii=Pii.NONE,
          fhir_source="Patient.gender", binding=GENDER, upstream=(RAW_JSON,)),
        C("birth_date", "date", "date of birth, generalised per privacy.birth_date (default: "
          "1 January of the year)", pii=Pii.QUASI,
          fhir_source="Patient.birthDate, generalised", upstream=(RAW_JSON,)),
        C("deceased_at", "timestamp", "time of death when known", pii=Pii.QUASI,
          fhir_source="Patient.deceasedDateTime", upstream=(RAW_JSON,)),
        *_lineage("Patient"),
        C("person_key", "text", "pseudonym of the person this record belongs to after record "
          "merging (docs/merging.md); its own person when merging is off", nullable=False,
          pii=Pii.PSEUDONYM, fhir_source="Patient.id and Patient.identifier, linked and "
          "pseudonymised", upstream=(RAW_JSON,)),
    ),
    primary_key=("patient_key",),
    # Derive finds changed rows by change_seq (it grows with insertion order: BRIN costs a
    # fraction of a B-tree's writes) and gathers each person's records.
    indexes=(Index(("change_seq",), "brin"), Index(("person_key",))),
    freshness="refined_at",
)

OBSERVATION = Table(
    "refined", "observation", "Body height, weight and BMI observations in canonical UCUM units.",
    owner="refine",
    columns=(
        C("observation_id", "text", "the source Observation.id", nullable=False,
          pii=Pii.RECORD_ID, fhir_source="Observation.id", upstream=(RAW_JSON,)),
        C("patient_key", "text", "patient the observation is about", nullable=False,
          pii=Pii.PSEUDONYM, fhir_source="Observation.subject.reference, pseudonymised",
          upstream=(RAW_JSON,), references="refined.patient.patient_key"),
        C("measure", "text", "body_height, body_weight or bmi", nullable=False, pii=Pii.NONE,
          fhir_source="Observation.code.coding.code, named", binding=LOINC_VITALS,
          upstream=(RAW_JSON,)),
        C("code_system", "text", "code system of the code (LOINC)", nullable=False,
          pii=Pii.NONE, fhir_source="Observation.code.coding.system", upstream=(RAW_JSON,)),
        C("code", "text", "LOINC code", nullable=False, pii=Pii.NONE,
          fhir_source="Observation.code.coding.code (LOINC; translated from feeder codes)",
          binding=LOINC_VITALS, upstream=(RAW_JSON,)),
        C("value", "float", "value in the canonical unit", nullable=False,
          unit="cm, kg or kg/m2 as in column unit", pii=Pii.NONE,
          fhir_source="Observation.valueQuantity.value converted to the canonical unit",
          upstream=(RAW_JSON,)),
        C("unit", "text", "canonical UCUM unit: cm, kg or kg/m2", nullable=False, pii=Pii.NONE,
          fhir_source="Observation.valueQuantity.code (or .unit), made canonical",
          binding=UCUM_UNITS, upstream=(RAW_JSON,)),
        C("source_value", "float", "value as sent", unit="as in column source_unit",
          pii=Pii.NONE, fhir_source="Observation.valueQuantity.value", upstream=(RAW_JSON,)),
        C("source_unit", "text", "UCUM unit as sent", pii=Pii.NONE,
          fhir_source="Observation.valueQuantity.code (or .unit)", binding=UCUM_UNITS,
          upstream=(RAW_JSON,)),
        C("effective_at", "timestamp", "when the measurement was taken", nullable=False,
          pii=Pii.NONE, fhir_source="Observation.effectiveDateTime | effectiveInstant | "
          "effectivePeriod.start", upstream=(RAW_JSON,)),
        C("status", "text", "FHIR observation status", nullable=False, pii=Pii.NONE,
          fhir_source="Observation.status",
          binding="http://hl7.org/fhir/ValueSet/observation-status", upstream=(RAW_JSON,)),
        *_lineage("Observation"),
        C("code_system_version", "text", "version of the code system the terminology server "
          "validated the code against", pii=Pii.NONE,
          fhir_source="$validate-code response: Parameters.version"),
        C("mapping_equivalence", "text", "ConceptMap equivalence when the code was translated "
          "from a feeder system's code (null when sent as LOINC)", pii=Pii.NONE,
          fhir_source="$translate response: match.equivalence",
          binding="http://hl7.org/fhir/ValueSet/concept-map-equivalence"),
        C("source_coding", "text", "the feeder coding as sent (system|code) when translated",
          pii=Pii.NONE, fhir_source="Observation.code.coding (system|code)",
          upstream=(RAW_JSON,)),
    ),
    primary_key=("observation_id",),
    # Derive reads one person's few dozen observations at a time: the patient key alone is
    # selective enough, and a narrow index is cheaper to maintain.
    indexes=(Index(("patient_key",)), Index(("change_seq",), "brin")),
    freshness="refined_at",
)

OBSERVATION_PENDING = replace(
    OBSERVATION, name="observation_pending",
    description="Observations whose patient is not (yet) refined; promoted when it arrives.",
    # Its patient is by definition not in refined.patient yet: no join to claim.
    columns=tuple(replace(c, description="patient the observation is about (not yet refined)",
                          references=None) if c.name == "patient_key" else c
                  for c in OBSERVATION.columns),
    indexes=(Index(("patient_key",)),))

QUARANTINE = Table(
    "refined", "quarantine", "Records that failed standardisation or validation, with why.",
    owner="refine",
    columns=(
        C("raw_record_id", "text", "the quarantined raw record", nullable=False,
          pii=Pii.RECORD_ID, upstream=("raw.record.raw_record_id",),
          references="raw.record.raw_record_id"),
        C("batch_id", "text", "raw batch of the record", nullable=False, pii=Pii.NONE,
          upstream=("raw.record.batch_id",), references="raw.batch.batch_id"),
        C("resource_type", "text", "resourceType when it could be read", pii=Pii.NONE,
          fhir_source="Resource.resourceType", upstream=(RAW_JSON,)),
        C("resource_id", "text", "resource id (Observations only: Patient ids are identifiers)",
          pii=Pii.RECORD_ID, fhir_source="Observation.id", upstream=(RAW_JSON,)),
        C("reason", "text", "machine-readable reason code (vitalflow.reasons)", nullable=False,
          pii=Pii.NONE, binding=REASONS),
        C("detail", "text", "human-readable detail; never contains patient identifiers",
          pii=Pii.NONE),
        C("quarantined_at", "timestamp", "when it was quarantined", nullable=False,
          pii=Pii.NONE),
    ),
    primary_key=("raw_record_id",),
    freshness="quarantined_at",
)

_HEIGHT = "refined.observation.value"
PATIENT_BMI_LATEST = Table(
    "derived", "patient_bmi_latest",
    "Per patient: latest weight, the latest height within the window before it, BMI and WHO "
    "category.",
    owner="derive_patient_bmi",
    columns=(
        C("patient_key", "text", "the person (refined.patient.person_key): metrics over all "
          "records merged into one person", nullable=False, pii=Pii.PSEUDONYM,
          upstream=("refined.patient.person_key",), references="refined.patient.person_key"),
        C("sex", "text", "administrative gender", pii=Pii.NONE, binding=GENDER,
          upstream=("refined.patient.gender",)),
        C("height_cm", "float", "latest height within the window before the weight", unit="cm",
          pii=Pii.NONE, upstream=(_HEIGHT, "refined.observation.effective_at")),
        C("height_observation_id", "text", "observation the height came from",
          pii=Pii.RECORD_ID, upstream=("refined.observation.observation_id",),
          references="refined.observation.observation_id"),
        C("height_at", "timestamp", "when the height was measured", pii=Pii.NONE,
          upstream=("refined.observation.effective_at",)),
        C("weight_kg", "float", "latest weight", nullable=False, unit="kg", pii=Pii.NONE,
          upstream=(_HEIGHT, "refined.observation.effective_at")),
        C("weight_observation_id", "text", "observation the weight came from", nullable=False,
          pii=Pii.RECORD_ID, upstream=("refined.observation.observation_id",),
          references="refined.observation.observation_id"),
        C("weight_at", "timestamp", "when the weight was measured", nullable=False,
          pii=Pii.NONE, upstream=("refined.observation.effective_at",)),
        C("bmi", "float", "weight_kg / (height_cm/100)^2, null without a height", unit="kg/m2",
          pii=Pii.NONE, upstream=("derived.patient_bmi_latest.weight_kg",
                                  "derived.patient_bmi_latest.height_cm")),
        C("weight_category", "text", "WHO adult category (underweight, normal, overweight, "
          "obese); 'not_classified_under_18' for children; 'unknown' without BMI",
          nullable=False, pii=Pii.NONE,
          binding="http://vitalflow.example.org/fhir/ValueSet/bmi-category-findings",
          upstream=("derived.patient_bmi_latest.bmi", "derived.patient_bmi_latest.age_years")),
        C("age_years", "int", "completed years of age at the weight measurement", unit="a",
          pii=Pii.QUASI, upstream=("refined.patient.birth_date",
                                   "derived.patient_bmi_latest.weight_at")),
        C("computed_at", "timestamp", "when this row was last (re)written", nullable=False,
          pii=Pii.NONE),
    ),
    primary_key=("patient_key",),
    freshness="computed_at",
)

_BMI = "derived.patient_bmi_latest"
AGE_BAND_SUMMARY = Table(
    "derived", "age_band_summary", "Patients per age band x sex x weight category, with mean BMI.",
    owner="derive_age_band_summary",
    columns=(
        C("age_band", "text", "age band label, e.g. '18-29' or '80+'", nullable=False,
          pii=Pii.NONE, upstream=(f"{_BMI}.age_years",)),
        C("sex", "text", "administrative gender ('unknown' when absent)", nullable=False,
          pii=Pii.NONE, binding=GENDER, upstream=(f"{_BMI}.sex",)),
        C("weight_category", "text", "as in patient_bmi_latest", nullable=False, pii=Pii.NONE,
          binding="http://vitalflow.example.org/fhir/ValueSet/bmi-category-findings",
          upstream=(f"{_BMI}.weight_category",)),
        C("patients", "int", "number of patients", nullable=False, unit="{patient}",
          pii=Pii.NONE, upstream=(f"{_BMI}.patient_key",)),
        C("mean_bmi", "float", "mean BMI of those patients", unit="kg/m2", pii=Pii.NONE,
          upstream=(f"{_BMI}.bmi",)),
        C("computed_at", "timestamp", "when this row was last (re)written", nullable=False,
          pii=Pii.NONE),
    ),
    primary_key=("age_band", "sex", "weight_category"),
    freshness="computed_at",
)


def _meta(name: str, description: str, owner: str, columns: tuple[Column, ...],
          primary_key: tuple[str, ...] = (), freshness: str | None = None) -> Table:
    return Table("meta", name, description, owner, columns, primary_key, freshness=freshness)


_TARGET = C("target", "text", "where the layer lives: 'control' or the backend URL without "
            "secrets", nullable=False, pii=Pii.NONE)
# The control database's own tables (DDL in vitalflow/database.py and terminology/cache.py).
META_TABLES = (
    _meta("run", "One row per pipeline run with its outcome counts.", "run", (
        C("run_id", "text", "the run's id", nullable=False, pii=Pii.NONE),
        C("started_at", "timestamp", "when the run started", nullable=False, pii=Pii.NONE),
        C("finished_at", "timestamp", "when it finished (null while running or after a crash)",
          pii=Pii.NONE),
        C("status", "text", "running, succeeded or failed", nullable=False, pii=Pii.NONE),
        C("counts", "json", "records by outcome per resource type", pii=Pii.NONE),
    ), ("run_id",), "started_at"),
    _meta("refined_batch", "Raw batches already refined, per target: refine skips them.",
          "refine", (
              _TARGET,
              C("batch_id", "text", "the refined raw batch", nullable=False, pii=Pii.NONE,
                references="raw.batch.batch_id"),
              C("run_id", "text", "run that refined it", nullable=False, pii=Pii.NONE,
                references="meta.run.run_id"),
              C("refined_at", "timestamp", "when it was refined", nullable=False, pii=Pii.NONE),
              C("records", "int", "records in the batch", nullable=False, unit="{record}",
                pii=Pii.NONE),
          ), ("target", "batch_id"), "refined_at"),
    _meta("terminology_pending", "Observations the terminology server could not check yet; "
          "every later refine retries them.", "refine", (
              _TARGET,
              C("raw_record_id", "text", "the parked raw record", nullable=False,
                pii=Pii.RECORD_ID, references="raw.record.raw_record_id"),
              C("batch_id", "text", "its raw batch", nullable=False, pii=Pii.NONE,
                references="raw.batch.batch_id"),
              C("parked_at", "timestamp", "when it was parked", nullable=False, pii=Pii.NONE),
          ), ("target", "raw_record_id"), "parked_at"),
    _meta("derive_watermark", "Per derived table and target: the change_seq derive has seen.",
          "derive", (
              _TARGET,
              C("table_name", "text", "the derived table", nullable=False, pii=Pii.NONE),
              C("change_seq", "int", "refined changes up to this sequence number are derived",
                nullable=False, unit="{sequence}", pii=Pii.NONE),
              C("derived_at", "timestamp", "when derive last ran", nullable=False,
                pii=Pii.NONE),
          ), ("target", "table_name"), "derived_at"),
    _meta("patient_touch", "Patients that lost an observation to another patient: derive "
          "recomputes them.", "refine", (
              C("patient_key", "text", "the patient whose derived rows must change",
                nullable=False, pii=Pii.PSEUDONYM, references="refined.patient.patient_key"),
              C("change_seq", "int", "when (in change sequence) it happened", nullable=False,
                unit="{sequence}", pii=Pii.NONE),
          )),
    _meta("table_owner", "The one flow allowed to write each derived table; a trigger refuses "
          "any other writer.", "setup", (
              C("table_name", "text", "layer.table", nullable=False, pii=Pii.NONE),
              C("owner_flow", "text", "the owning flow", nullable=False, pii=Pii.NONE),
          ), ("table_name",)),
    _meta("terminology_cache", "Terminology server answers kept for their TTL (created on the "
          "first terminology check).", "refine", (
              C("key", "text", "hash of the operation and its inputs", nullable=False,
                pii=Pii.NONE),
              C("operation", "text", "validate-code, lookup or translate", nullable=False,
                pii=Pii.NONE),
              C("request", "json", "the identifying inputs (system, code, version, url)",
                nullable=False, pii=Pii.NONE),
              C("response", "json", "the server's answer", nullable=False, pii=Pii.NONE),
              C("fetched_at", "timestamp", "when it was fetched", nullable=False, pii=Pii.NONE),
              C("expires", "timestamp", "when it stops being used", nullable=False,
                pii=Pii.NONE),
          ), ("key",), "fetched_at"),
)

# The restricted identity schema of vitalflow/privacy/identity.py (record merging adds the
# tables of vitalflow/merge/store.py); listed with access rules only.
IDENTITY_TABLES = tuple(Table("identity", name, description, owner, (), ()) for
                        name, description, owner in (
    ("pseudonym_key", "Key ids (never keys) of the pseudonymisation keys; one is active "
     "(retired_at is null)", "refine"),
    ("patient_identity", "Source patient identity behind each pseudonym; readable only through "
     "identity.reidentify", "refine"),
    ("reidentification_log", "Every re-identification: who (database and operating-system "
     "user), when, which, why", "reidentify"),
    ("rekey_log", "Every move of the pseudonyms to a new key: who, when, old and new key id, "
     "how many identities", "rekey"),
))

RAW_TABLES = (RAW_RECORD, RAW_BATCH)
REFINED_TABLES = (PATIENT, OBSERVATION, QUARANTINE, OBSERVATION_PENDING)
DERIVED_TABLES = (PATIENT_BMI_LATEST, AGE_BAND_SUMMARY)
ALL_TABLES = REFINED_TABLES + DERIVED_TABLES
# Every table vitalflow creates, for the data dictionary (identity ones without columns).
DESCRIBED_TABLES = (RAW_TABLES + REFINED_TABLES + DERIVED_TABLES
                    + META_TABLES + IDENTITY_TABLES)
