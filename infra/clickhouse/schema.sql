-- vitalflow's tables on a replicated ClickHouse cluster (infra/clickhouse/README.md).
-- Generated from vitalflow/tables.py: python -m vitalflow.drills.clickhouse

CREATE DATABASE IF NOT EXISTS derived ON CLUSTER vitalflow;

CREATE DATABASE IF NOT EXISTS refined ON CLUSTER vitalflow;

CREATE TABLE IF NOT EXISTS refined.patient ON CLUSTER vitalflow (
  patient_key String NOT NULL COMMENT 'pseudonym of the source Patient record (HMAC-SHA256 of its id, docs/privacy.md)',
  gender Nullable(String) COMMENT 'administrative gender: male, female, other, unknown',
  birth_date Nullable(Date32) COMMENT 'date of birth, generalised per privacy.birth_date (default: 1 January of the year)',
  deceased_at Nullable(DateTime64(6, 'UTC')) COMMENT 'time of death when known',
  version Nullable(Int64) COMMENT 'meta.versionId of the source resource (null when absent) [{version}]',
  last_updated Nullable(DateTime64(6, 'UTC')) COMMENT 'meta.lastUpdated of the source resource',
  content_hash String NOT NULL COMMENT 'hash of the raw record text; equal hashes are exact duplicates',
  raw_record_id String NOT NULL COMMENT 'raw-layer record this row came from',
  change_seq Int64 NOT NULL COMMENT 'increases on every insert or update; drives incremental derive [{sequence}]',
  refined_at DateTime64(6, 'UTC') NOT NULL COMMENT 'when this row was last written',
  person_key String NOT NULL COMMENT 'pseudonym of the person this record belongs to after record merging (docs/merging.md); its own person when merging is off',
  _vf_version UInt64 DEFAULT toUnixTimestamp64Nano(now64(9)) COMMENT 'vitalflow write version: the highest per key is the current row',
  _vf_deleted UInt8 DEFAULT 0 COMMENT 'vitalflow tombstone: 1 when the key was deleted'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', _vf_version, _vf_deleted)
ORDER BY (patient_key)
COMMENT 'One row per patient: demographics needed for derived metrics.';

CREATE TABLE IF NOT EXISTS refined.observation ON CLUSTER vitalflow (
  observation_id String NOT NULL COMMENT 'the source Observation.id',
  patient_key String NOT NULL COMMENT 'patient the observation is about',
  measure String NOT NULL COMMENT 'body_height, body_weight or bmi',
  code_system String NOT NULL COMMENT 'code system of the code (LOINC)',
  code String NOT NULL COMMENT 'LOINC code',
  value Float64 NOT NULL COMMENT 'value in the canonical unit [cm, kg or kg/m2 as in column unit]',
  unit String NOT NULL COMMENT 'canonical UCUM unit: cm, kg or kg/m2',
  source_value Nullable(Float64) COMMENT 'value as sent [as in column source_unit]',
  source_unit Nullable(String) COMMENT 'UCUM unit as sent',
  effective_at DateTime64(6, 'UTC') NOT NULL COMMENT 'when the measurement was taken',
  status String NOT NULL COMMENT 'FHIR observation status',
  version Nullable(Int64) COMMENT 'meta.versionId of the source resource (null when absent) [{version}]',
  last_updated Nullable(DateTime64(6, 'UTC')) COMMENT 'meta.lastUpdated of the source resource',
  content_hash String NOT NULL COMMENT 'hash of the raw record text; equal hashes are exact duplicates',
  raw_record_id String NOT NULL COMMENT 'raw-layer record this row came from',
  change_seq Int64 NOT NULL COMMENT 'increases on every insert or update; drives incremental derive [{sequence}]',
  refined_at DateTime64(6, 'UTC') NOT NULL COMMENT 'when this row was last written',
  code_system_version Nullable(String) COMMENT 'version of the code system the terminology server validated the code against',
  mapping_equivalence Nullable(String) COMMENT 'ConceptMap equivalence when the code was translated from a feeder system\'s code (null when sent as LOINC)',
  source_coding Nullable(String) COMMENT 'the feeder coding as sent (system|code) when translated',
  _vf_version UInt64 DEFAULT toUnixTimestamp64Nano(now64(9)) COMMENT 'vitalflow write version: the highest per key is the current row',
  _vf_deleted UInt8 DEFAULT 0 COMMENT 'vitalflow tombstone: 1 when the key was deleted'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', _vf_version, _vf_deleted)
ORDER BY (observation_id)
COMMENT 'Body height, weight and BMI observations in canonical UCUM units.';

CREATE TABLE IF NOT EXISTS refined.quarantine ON CLUSTER vitalflow (
  raw_record_id String NOT NULL COMMENT 'the quarantined raw record',
  batch_id String NOT NULL COMMENT 'raw batch of the record',
  resource_type Nullable(String) COMMENT 'resourceType when it could be read',
  resource_id Nullable(String) COMMENT 'resource id (Observations only: Patient ids are identifiers)',
  reason String NOT NULL COMMENT 'machine-readable reason code (vitalflow.reasons)',
  detail Nullable(String) COMMENT 'human-readable detail; never contains patient identifiers',
  quarantined_at DateTime64(6, 'UTC') NOT NULL COMMENT 'when it was quarantined',
  _vf_version UInt64 DEFAULT toUnixTimestamp64Nano(now64(9)) COMMENT 'vitalflow write version: the highest per key is the current row',
  _vf_deleted UInt8 DEFAULT 0 COMMENT 'vitalflow tombstone: 1 when the key was deleted'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', _vf_version, _vf_deleted)
ORDER BY (raw_record_id)
COMMENT 'Records that failed standardisation or validation, with why.';

CREATE TABLE IF NOT EXISTS refined.observation_pending ON CLUSTER vitalflow (
  observation_id String NOT NULL COMMENT 'the source Observation.id',
  patient_key String NOT NULL COMMENT 'patient the observation is about (not yet refined)',
  measure String NOT NULL COMMENT 'body_height, body_weight or bmi',
  code_system String NOT NULL COMMENT 'code system of the code (LOINC)',
  code String NOT NULL COMMENT 'LOINC code',
  value Float64 NOT NULL COMMENT 'value in the canonical unit [cm, kg or kg/m2 as in column unit]',
  unit String NOT NULL COMMENT 'canonical UCUM unit: cm, kg or kg/m2',
  source_value Nullable(Float64) COMMENT 'value as sent [as in column source_unit]',
  source_unit Nullable(String) COMMENT 'UCUM unit as sent',
  effective_at DateTime64(6, 'UTC') NOT NULL COMMENT 'when the measurement was taken',
  status String NOT NULL COMMENT 'FHIR observation status',
  version Nullable(Int64) COMMENT 'meta.versionId of the source resource (null when absent) [{version}]',
  last_updated Nullable(DateTime64(6, 'UTC')) COMMENT 'meta.lastUpdated of the source resource',
  content_hash String NOT NULL COMMENT 'hash of the raw record text; equal hashes are exact duplicates',
  raw_record_id String NOT NULL COMMENT 'raw-layer record this row came from',
  change_seq Int64 NOT NULL COMMENT 'increases on every insert or update; drives incremental derive [{sequence}]',
  refined_at DateTime64(6, 'UTC') NOT NULL COMMENT 'when this row was last written',
  code_system_version Nullable(String) COMMENT 'version of the code system the terminology server validated the code against',
  mapping_equivalence Nullable(String) COMMENT 'ConceptMap equivalence when the code was translated from a feeder system\'s code (null when sent as LOINC)',
  source_coding Nullable(String) COMMENT 'the feeder coding as sent (system|code) when translated',
  _vf_version UInt64 DEFAULT toUnixTimestamp64Nano(now64(9)) COMMENT 'vitalflow write version: the highest per key is the current row',
  _vf_deleted UInt8 DEFAULT 0 COMMENT 'vitalflow tombstone: 1 when the key was deleted'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', _vf_version, _vf_deleted)
ORDER BY (observation_id)
COMMENT 'Observations whose patient is not (yet) refined; promoted when it arrives.';

CREATE TABLE IF NOT EXISTS derived.patient_bmi_latest ON CLUSTER vitalflow (
  patient_key String NOT NULL COMMENT 'the person (refined.patient.person_key): metrics over all records merged into one person',
  sex Nullable(String) COMMENT 'administrative gender',
  height_cm Nullable(Float64) COMMENT 'latest height within the window before the weight [cm]',
  height_observation_id Nullable(String) COMMENT 'observation the height came from',
  height_at Nullable(DateTime64(6, 'UTC')) COMMENT 'when the height was measured',
  weight_kg Float64 NOT NULL COMMENT 'latest weight [kg]',
  weight_observation_id String NOT NULL COMMENT 'observation the weight came from',
  weight_at DateTime64(6, 'UTC') NOT NULL COMMENT 'when the weight was measured',
  bmi Nullable(Float64) COMMENT 'weight_kg / (height_cm/100)^2, null without a height [kg/m2]',
  weight_category String NOT NULL COMMENT 'WHO adult category (underweight, normal, overweight, obese); \'not_classified_under_18\' for children; \'unknown\' without BMI',
  age_years Nullable(Int64) COMMENT 'completed years of age at the weight measurement [a]',
  computed_at DateTime64(6, 'UTC') NOT NULL COMMENT 'when this row was last (re)written',
  _vf_version UInt64 DEFAULT toUnixTimestamp64Nano(now64(9)) COMMENT 'vitalflow write version: the highest per key is the current row',
  _vf_deleted UInt8 DEFAULT 0 COMMENT 'vitalflow tombstone: 1 when the key was deleted'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', _vf_version, _vf_deleted)
ORDER BY (patient_key)
COMMENT 'Per patient: latest weight, the latest height within the window before it, BMI and WHO category.';

CREATE TABLE IF NOT EXISTS derived.age_band_summary ON CLUSTER vitalflow (
  age_band String NOT NULL COMMENT 'age band label, e.g. \'18-29\' or \'80+\'',
  sex String NOT NULL COMMENT 'administrative gender (\'unknown\' when absent)',
  weight_category String NOT NULL COMMENT 'as in patient_bmi_latest',
  patients Int64 NOT NULL COMMENT 'number of patients [{patient}]',
  mean_bmi Nullable(Float64) COMMENT 'mean BMI of those patients [kg/m2]',
  computed_at DateTime64(6, 'UTC') NOT NULL COMMENT 'when this row was last (re)written',
  _vf_version UInt64 DEFAULT toUnixTimestamp64Nano(now64(9)) COMMENT 'vitalflow write version: the highest per key is the current row',
  _vf_deleted UInt8 DEFAULT 0 COMMENT 'vitalflow tombstone: 1 when the key was deleted'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', _vf_version, _vf_deleted)
ORDER BY (age_band, sex, weight_category)
COMMENT 'Patients per age band x sex x weight category, with mean BMI.';
