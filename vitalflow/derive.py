"""Derive: per-patient latest BMI and the age-band summary, recomputed only where inputs changed."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from storage_backends.postgres import PostgresBackend
from vitalflow.config import DeriveSettings
from vitalflow.control import CONTROL, last_change_seq, lock_pipeline, set_watermark, watermark
from vitalflow.database import act_as
from vitalflow.metrics import age_band_labels
from vitalflow.tables import AGE_BAND_SUMMARY, PATIENT_BMI_LATEST

BMI_FLOW = PATIENT_BMI_LATEST.owner
SUMMARY_FLOW = AGE_BAND_SUMMARY.owner
_BMI_COLUMNS = [c.name for c in PATIENT_BMI_LATEST.columns if c.name != "computed_at"]
_SUMMARY_COLUMNS = [c.name for c in AGE_BAND_SUMMARY.columns if c.name != "computed_at"]


@dataclass
class DeriveResult:
    changed_patients: int
    bmi_rows_written: int
    bmi_rows_deleted: int
    summary_rows_written: int
    summary_rows_deleted: int
    full_rebuild: bool


def category_sql(bmi: str, age: str) -> str:
    """WHO adult BMI categories; the SQL twin of metrics.weight_category."""
    return f"""CASE WHEN {bmi} IS NULL OR {age} IS NULL THEN 'unknown'
                    WHEN {age} < 18 THEN 'not_classified_under_18'
                    WHEN {bmi} < 18.5 THEN 'underweight'
                    WHEN {bmi} < 25 THEN 'normal'
                    WHEN {bmi} < 30 THEN 'overweight'
                    ELSE 'obese' END"""


def age_band_sql(age: str, bands: list[int]) -> str:
    labels = age_band_labels(bands)
    cases = " ".join(f"WHEN {age} >= {low} THEN '{label}'"
                     for low, label in reversed(list(zip(bands, labels, strict=True))))
    return f"CASE {cases} ELSE 'unknown' END"


def _merge_rows(conn: psycopg.Connection, target: str, source: str, columns: list[str],
                key: list[str]) -> int:
    """Upsert, rewriting a row only when one of its values actually changed."""
    names = ", ".join(columns)
    keys = ", ".join(key)
    values = [c for c in columns if c not in key]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in values)
    old = ", ".join(f"t.{c}" for c in values)
    new = ", ".join(f"EXCLUDED.{c}" for c in values)
    row = conn.execute(f"""
        WITH written AS (
          INSERT INTO {target} AS t ({names}, computed_at)
          SELECT {names}, now() FROM {source}
          ON CONFLICT ({keys}) DO UPDATE SET {sets}, computed_at = EXCLUDED.computed_at
          WHERE ({old}) IS DISTINCT FROM ({new})
          RETURNING 1)
        SELECT count(*) FROM written""").fetchone()
    return row[0]


def derive_patient_bmi(store: PostgresBackend, settings: DeriveSettings,
                       full: bool = False) -> dict[str, int]:
    """Recompute derived.patient_bmi_latest for persons whose inputs changed since last time."""
    with store.connect() as conn:
        lock_pipeline(conn)
        upto = last_change_seq(conn)
        since = 0 if full else watermark(conn, CONTROL, PATIENT_BMI_LATEST.qualified_name)
        # Persons (under the derived table's key name) with a changed record, observation, or
        # a record that lost an observation or left the person (meta.patient_touch).
        conn.execute("""
            CREATE TEMP TABLE changed ON COMMIT DROP AS
            WITH records AS (
              SELECT patient_key FROM refined.observation
               WHERE change_seq > %(since)s AND measure IN ('body_height', 'body_weight')
              UNION SELECT patient_key FROM meta.patient_touch WHERE change_seq > %(since)s)
            SELECT p.person_key AS patient_key
              FROM records JOIN refined.patient p USING (patient_key)
            UNION SELECT person_key FROM refined.patient WHERE change_seq > %(since)s
            UNION SELECT patient_key FROM meta.patient_touch WHERE change_seq > %(since)s""",
                     {"since": since})
        if full:
            conn.execute("INSERT INTO changed SELECT patient_key FROM derived.patient_bmi_latest "
                         "EXCEPT SELECT patient_key FROM changed")
        changed = conn.execute("SELECT count(*) FROM changed").fetchone()[0]
        compute_bmi(conn, settings)
        act_as(conn, PATIENT_BMI_LATEST, BMI_FLOW)
        written = _merge_rows(conn, PATIENT_BMI_LATEST.qualified_name, "new_bmi", _BMI_COLUMNS,
                              ["patient_key"])
        deleted = conn.execute("""
            DELETE FROM derived.patient_bmi_latest d USING changed c
            WHERE d.patient_key = c.patient_key
              AND NOT EXISTS (SELECT 1 FROM new_bmi n WHERE n.patient_key = d.patient_key)
            """).rowcount
        set_watermark(conn, CONTROL, PATIENT_BMI_LATEST.qualified_name, upto)
    return {"changed_patients": changed, "written": written, "deleted": deleted}


def derive_age_band_summary(store: PostgresBackend, settings: DeriveSettings) -> dict[str, int]:
    """Regroup patient_bmi_latest; only groups whose values changed are rewritten."""
    with store.connect() as conn:
        lock_pipeline(conn)
        # One row per group: recomputing it whole is cheap; rewriting unchanged rows is not.
        conn.execute(f"""
            CREATE TEMP TABLE new_summary ON COMMIT DROP AS
            SELECT {age_band_sql('age_years', settings.age_bands)} AS age_band, sex,
                   weight_category, count(*) AS patients,
                   round(avg(bmi)::numeric, 6)::double precision AS mean_bmi
              FROM derived.patient_bmi_latest GROUP BY 1, 2, 3""")
        act_as(conn, AGE_BAND_SUMMARY, SUMMARY_FLOW)
        written = _merge_rows(conn, AGE_BAND_SUMMARY.qualified_name, "new_summary",
                              _SUMMARY_COLUMNS, ["age_band", "sex", "weight_category"])
        deleted = conn.execute("""
            DELETE FROM derived.age_band_summary s WHERE NOT EXISTS (
              SELECT 1 FROM new_summary n WHERE (n.age_band, n.sex, n.weight_category)
                                              = (s.age_band, s.sex, s.weight_category))
            """).rowcount
    return {"written": written, "deleted": deleted}


def derive(store: PostgresBackend, settings: DeriveSettings, full: bool = False) -> DeriveResult:
    """Bring both derived tables up to date with refined; full=True recomputes every patient."""
    bmi = derive_patient_bmi(store, settings, full)
    summary = derive_age_band_summary(store, settings)
    return DeriveResult(bmi["changed_patients"], bmi["written"], bmi["deleted"],
                        summary["written"], summary["deleted"], full)


def compute_bmi(conn: psycopg.Connection, settings: DeriveSettings) -> None:
    """Temp table new_bmi: the metrics of every person in temp table changed (patient_key)."""
    conn.execute(f"""
        CREATE TEMP TABLE new_bmi ON COMMIT DROP AS
        WITH weight AS (
          SELECT DISTINCT ON (p.person_key) p.person_key AS patient_key,
                 o.patient_key AS record_key, o.observation_id, o.value, o.effective_at
            FROM changed c JOIN refined.patient p ON p.person_key = c.patient_key
            JOIN refined.observation o ON o.patient_key = p.patient_key
           WHERE o.measure = 'body_weight'
           ORDER BY p.person_key, o.effective_at DESC, o.observation_id DESC),
        aged AS (
          SELECT w.*, coalesce(p.gender, 'unknown') AS sex,
                 extract(year FROM age((w.effective_at AT TIME ZONE 'UTC')::date,
                                       p.birth_date))::bigint AS age_years
            FROM weight w LEFT JOIN refined.patient p ON p.patient_key = w.record_key),
        paired AS (
          SELECT a.*, h.observation_id AS height_observation_id, h.value AS height_cm,
                 h.effective_at AS height_at
            FROM aged a LEFT JOIN LATERAL (
              SELECT o.observation_id, o.value, o.effective_at
                FROM refined.patient p JOIN refined.observation o USING (patient_key)
               WHERE p.person_key = a.patient_key AND o.measure = 'body_height'
                 AND o.effective_at <= a.effective_at
                 AND o.effective_at >= a.effective_at - make_interval(days =>
                     CASE WHEN a.age_years < 18 THEN %(child)s ELSE %(adult)s END)
               ORDER BY o.effective_at DESC, o.observation_id DESC LIMIT 1) h ON true)
        SELECT patient_key, sex, height_cm, height_observation_id, height_at,
               value AS weight_kg, observation_id AS weight_observation_id,
               effective_at AS weight_at, value / (height_cm / 100.0) ^ 2 AS bmi,
               {category_sql('value / (height_cm / 100.0) ^ 2', 'age_years')} AS weight_category,
               age_years
          FROM paired""",
                 {"child": settings.child_height_window_days,
                  "adult": settings.height_window_days})
