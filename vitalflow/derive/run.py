"""Derive, once for every engine: changed persons read through the interface, metrics in DuckDB,
only rows whose values changed written back."""

from __future__ import annotations

from datetime import UTC, datetime

from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.config import DeriveSettings
from vitalflow.control import (last_change_seq, lock_pipeline, set_watermark, target_of,
                               touched_patients, watermark)
from vitalflow.database import act_as
from vitalflow.derive.sql import BMI_FLOW, SUMMARY_FLOW, DeriveResult, age_band_sql, category_sql
from vitalflow.tables import AGE_BAND_SUMMARY, OBSERVATION, PATIENT, PATIENT_BMI_LATEST, Table

if TYPE_CHECKING:
    from vitalflow.partitions.keys import Partition
    from vitalflow.storage import Layers

_MEASURES = ["body_height", "body_weight"]


def _duckdb() -> duckdb.DuckDBPyConnection:
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")  # dates of instants are taken in UTC, as in PostgreSQL
    return db


def derive_patient_bmi(layers: Layers, settings: DeriveSettings, full: bool = False,
                       partition: Partition | None = None, finish=None) -> dict[str, int]:
    """Recompute derived.patient_bmi_latest for patients whose inputs changed since last time.

    partition: only its persons; the watermark then moves once every partition is done, by
    whoever planned them, and finish(control, outcome) records this one in its transaction."""
    refined, derived = layers.refined, layers.derived
    target = target_of(derived, layers.control)
    with derived.transaction(), layers.control.connect() as control:
        if partition is None:  # partitions run side by side: their planner holds this lock
            lock_pipeline(control)
        act_as(control, PATIENT_BMI_LATEST, BMI_FLOW)
        upto = last_change_seq(control)
        since = 0 if full else watermark(control, target, PATIENT_BMI_LATEST.qualified_name)
        changed = _changed_patients(layers, since, touched_patients(control, since))
        if full:
            changed = pc.unique(pa.concat_arrays([changed, derived.read(
                PATIENT_BMI_LATEST, ["patient_key"]).column("patient_key").combine_chunks()]))
        if partition:
            changed = partition.keep_keys(changed)
        patients = refined.read(PATIENT, ["patient_key", "person_key", "gender", "birth_date"],
                                where=[("person_key", "in", changed)])
        observations = refined.read(OBSERVATION, ["patient_key", "observation_id", "measure",
                                                  "value", "effective_at"],
                                    where=[("patient_key", "in", patients.column("patient_key")),
                                           ("measure", "in", _MEASURES)])
        new = compute_bmi(observations, patients, settings)
        stored = derived.read(PATIENT_BMI_LATEST, where=[("patient_key", "in", changed)])
        written, deleted = _replace_changed(derived, PATIENT_BMI_LATEST, new, stored)
        outcome = {"changed_patients": len(changed), "written": written, "deleted": deleted}
        if partition is None:
            set_watermark(control, target, PATIENT_BMI_LATEST.qualified_name, upto)
        elif finish:
            finish(control, outcome)
    return outcome


def derive_age_band_summary(layers: Layers, settings: DeriveSettings) -> dict[str, int]:
    """Regroup patient_bmi_latest; only groups whose values changed are rewritten."""
    derived = layers.derived
    with derived.transaction(), layers.control.connect() as control:
        lock_pipeline(control)
        act_as(control, AGE_BAND_SUMMARY, SUMMARY_FLOW)
        latest = derived.read(PATIENT_BMI_LATEST, ["age_years", "sex", "weight_category", "bmi"])  # noqa: F841 - DuckDB reads it by name
        new = _duckdb().execute(f"""
            SELECT {age_band_sql('age_years', settings.age_bands)} AS age_band, sex,
                   weight_category, count(*) AS patients, round(avg(bmi), 6) AS mean_bmi
              FROM latest GROUP BY ALL""").arrow().read_all()
        written, deleted = _replace_changed(derived, AGE_BAND_SUMMARY, new,
                                            derived.read(AGE_BAND_SUMMARY))
    return {"written": written, "deleted": deleted}


def derive(layers: Layers, settings: DeriveSettings, full: bool = False) -> DeriveResult:
    """Bring both derived tables up to date with refined; full=True recomputes every person."""
    bmi = derive_patient_bmi(layers, settings, full)
    summary = derive_age_band_summary(layers, settings)
    return DeriveResult(bmi["changed_patients"], bmi["written"], bmi["deleted"],
                        summary["written"], summary["deleted"], full)


def _changed_patients(layers: Layers, since: int, touched: list[str]) -> pa.Array:
    """Persons with a changed record or observation, or a record that lost an observation or
    left the person (touched: record keys, or the person a record left)."""
    refined = layers.refined
    observed = refined.read(OBSERVATION, ["patient_key"], where=[
        ("change_seq", ">", since), ("measure", "in", _MEASURES)])
    records = pc.unique(pa.concat_arrays([observed.column("patient_key").combine_chunks(),
                                          pa.array(touched, pa.string())]))
    persons = refined.read(PATIENT, ["person_key"], where=[("patient_key", "in", records)])
    changed = refined.read(PATIENT, ["person_key"], where=[("change_seq", ">", since)])
    return pc.unique(pa.concat_arrays([
        persons.column("person_key").combine_chunks(),
        changed.column("person_key").combine_chunks(), pa.array(touched, pa.string())]))


def compute_bmi(observations: pa.Table, patients: pa.Table,
                 settings: DeriveSettings) -> pa.Table:
    """Per person the latest weight of any of its records,
    the demographics of that record, the latest height of any record within the window."""
    in_window = (f"h_at >= effective_at - to_days(CASE WHEN age_years < 18 "
                 f"THEN {settings.child_height_window_days} "
                 f"ELSE {settings.height_window_days} END)")
    bmi = "CASE WHEN has_height THEN value / ((h_value / 100.0) ^ 2) END"
    return _duckdb().execute(f"""
        WITH personal AS (
          SELECT p.person_key, o.* FROM observations o JOIN patients p USING (patient_key)),
        weight AS (
          SELECT person_key, patient_key AS record_key, observation_id, value, effective_at
            FROM personal WHERE measure = 'body_weight'
          QUALIFY row_number() OVER (PARTITION BY person_key
                                     ORDER BY effective_at DESC, observation_id DESC) = 1),
        aged AS (
          SELECT w.person_key AS patient_key, w.observation_id, w.value, w.effective_at,
                 coalesce(p.gender, 'unknown') AS sex,
                 {_completed_years('w.effective_at::date', 'p.birth_date')} AS age_years
            FROM weight w LEFT JOIN patients p ON p.patient_key = w.record_key),
        latest_height AS (
          -- The latest height at or before the weight (of equal times, the highest id): a
          -- grouped join costs a fraction of an ASOF join here, with the same rows.
          SELECT w.patient_key,
                 arg_max(h.observation_id, (h.effective_at, h.observation_id)) AS h_id,
                 arg_max(h.value, (h.effective_at, h.observation_id)) AS h_value,
                 max(h.effective_at) AS h_at
            FROM aged w JOIN personal h
              ON h.person_key = w.patient_key AND h.measure = 'body_height'
             AND h.effective_at <= w.effective_at
           GROUP BY w.patient_key),
        paired AS (
          SELECT w.*, l.h_id, l.h_value, l.h_at
            FROM aged w LEFT JOIN latest_height l USING (patient_key)),
        windowed AS (
          SELECT *, coalesce({in_window}, false) AS has_height FROM paired)
        SELECT patient_key, sex,
               CASE WHEN has_height THEN h_value END AS height_cm,
               CASE WHEN has_height THEN h_id END AS height_observation_id,
               CASE WHEN has_height THEN h_at END AS height_at,
               value AS weight_kg, observation_id AS weight_observation_id,
               effective_at AS weight_at, {bmi} AS bmi,
               {category_sql(bmi, 'age_years')} AS weight_category, age_years
          FROM windowed""").arrow().read_all()


def _completed_years(day: str, birth: str) -> str:
    """Completed years from birth to day, as PostgreSQL's extract(year FROM age(day, birth))."""
    def years(later: str, earlier: str) -> str:
        return (f"(year({later}) - year({earlier}) - CASE WHEN month({later}) * 100 + "
                f"day({later}) < month({earlier}) * 100 + day({earlier}) THEN 1 ELSE 0 END)")
    return (f"CASE WHEN {birth} IS NULL THEN NULL WHEN {day} >= {birth} "
            f"THEN {years(day, birth)} ELSE -{years(birth, day)} END")


def _replace_changed(backend, table: Table, new: pa.Table, stored: pa.Table) -> tuple[int, int]:
    """Upsert rows whose values changed and delete stored rows that have no new row."""
    keys = list(table.primary_key)
    values = [c for c in table.column_names if c not in keys and c != "computed_at"]
    new = new.cast(pa.schema([table.arrow_schema.field(c) for c in new.column_names]))
    db = _duckdb()
    changed = db.execute(f"""
        SELECT n.* FROM new n LEFT JOIN stored s USING ({', '.join(keys)})
         WHERE s.{keys[0]} IS NULL OR ({', '.join(f's.{c}' for c in values)})
               IS DISTINCT FROM ({', '.join(f'n.{c}' for c in values)})""").arrow().read_all()
    gone = db.execute(f"SELECT {', '.join(keys)} FROM stored "
                      f"EXCEPT SELECT {', '.join(keys)} FROM new").arrow().read_all()
    now = pa.array([datetime.now(UTC)] * changed.num_rows, pa.timestamp("us", "UTC"))
    backend.upsert(table, changed.append_column("computed_at", now))
    backend.delete(table, gone)
    return changed.num_rows, gone.num_rows
