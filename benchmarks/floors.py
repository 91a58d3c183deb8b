"""The floor of each storage profile: the bare work of a run, done the fastest known way.

1. read: DuckDB's `read_json` of the fields the metrics need straight from the input NDJSON
   (Observation id, subject reference, code, value, unit, effective time; Patient id, gender,
   birthDate), typed as DuckDB parses them;
2. load: those Arrow tables bulk-appended to the refined layer's engine in its own fastest way:
   PostgreSQL a binary COPY (pgpq encodes Arrow in Rust) into tables without keys or indexes,
   Iceberg and ClickHouse the engine's own append of the same tables;
3. derive: the metrics of every person (derive's one compute_bmi) and the age-band summary
   over the tables read in step 1, with no change detection and no writes.

No validation, no quarantine, no pseudonyms, no history: every ratio to this floor is what
the pipeline's real work costs on top of the bare minimum.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from vitalflow.catalog import MEASURES
from vitalflow.config import Settings
from vitalflow.derive.sql import age_band_sql
from vitalflow.ingest.parquet import discover_inputs, resource_type_hint
from vitalflow.tables import Column, Table

_OBSERVATION_JSON = {"id": "VARCHAR", "subject": "STRUCT(reference VARCHAR)",
                     "code": "STRUCT(coding STRUCT(system VARCHAR, code VARCHAR)[])",
                     "valueQuantity": "STRUCT(value DOUBLE, unit VARCHAR)",
                     "effectiveDateTime": "TIMESTAMPTZ"}
_PATIENT_JSON = {"id": "VARCHAR", "gender": "VARCHAR", "birthDate": "DATE"}
_MEASURE = " ".join(f"WHEN '{code}' THEN '{m.name}'" for code, m in MEASURES.items())
_KEY = "regexp_replace({}, '^(urn:uuid:|Patient/)', '')"

FLOOR_OBSERVATION = Table(
    "bench", "floor_observation", "Scratch table of the floor: the fields derive needs.",
    owner="bench",
    columns=(Column("observation_id", "text", "Observation.id", nullable=False),
             Column("patient_key", "text", "Observation.subject as an id"),
             Column("measure", "text", "measure of the LOINC code"),
             Column("value", "float", "valueQuantity.value"),
             Column("unit", "text", "valueQuantity.unit"),
             Column("effective_at", "timestamp", "effectiveDateTime")),
    primary_key=("observation_id",))
FLOOR_PATIENT = Table(
    "bench", "floor_patient", "Scratch table of the floor: the patients' demographics.",
    owner="bench",
    columns=(Column("patient_key", "text", "Patient.id", nullable=False),
             Column("gender", "text", "Patient.gender"),
             Column("birth_date", "date", "Patient.birthDate")),
    primary_key=("patient_key",))


@dataclass
class Floor:
    """Seconds of each part of one floor attempt."""

    read: float
    load: float
    derive: float
    observations: int
    persons: int

    @property
    def seconds(self) -> float:
        return self.read + self.load + self.derive


def read_inputs(input_dir: Path) -> tuple[pa.Table, pa.Table]:
    """(observations, patients) as DuckDB reads them from the input files; lines that are not
    valid JSON of that shape are skipped, as a bare loader would."""
    files = {"Observation": [], "Patient": []}
    for path in discover_inputs(input_dir):
        files.get(resource_type_hint(path.name), []).append(str(path))
    con = duckdb.connect()
    observations = con.execute(f"""
        SELECT id AS observation_id, {_KEY.format('subject.reference')} AS patient_key,
               CASE code.coding[1].code {_MEASURE} END AS measure,
               valueQuantity.value AS value, valueQuantity.unit AS unit,
               effectiveDateTime AS effective_at
          FROM read_json($files, format = 'newline_delimited', ignore_errors = true,
                         columns = {_OBSERVATION_JSON}) WHERE id IS NOT NULL""",
                               {"files": files["Observation"]}).fetch_arrow_table()
    patients = con.execute(f"""
        SELECT id AS patient_key, gender, birthDate AS birth_date
          FROM read_json($files, format = 'newline_delimited', ignore_errors = true,
                         columns = {_PATIENT_JSON}) WHERE id IS NOT NULL""",
                           {"files": files["Patient"]}).fetch_arrow_table()
    con.close()
    return (_as(observations, FLOOR_OBSERVATION), _as(patients, FLOOR_PATIENT))


def _as(data: pa.Table, table: Table) -> pa.Table:
    return data.cast(table.arrow_schema)  # a key is required where the engine needs one


def _binary_copy(engine, table: Table, data: pa.Table) -> None:
    """PostgreSQL: binary COPY of the Arrow table into a new table without key or index."""
    import pgpq

    encoder = pgpq.ArrowToPostgresBinaryEncoder(data.schema)
    with engine.connect() as conn:
        with conn.cursor().copy(f"COPY {table.qualified_name} FROM STDIN (FORMAT binary)"
                                ) as copy:
            copy.write(encoder.write_header())
            for batch in data.to_batches():
                copy.write(encoder.write_batch(batch))
            copy.write(encoder.finish())


def _create_bare(engine, table: Table) -> None:
    """PostgreSQL: the floor's tables without key or index (setup, not timed)."""
    columns = ", ".join(f"{c.name} {c.sql_type}" for c in table.columns)
    with engine.connect() as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.layer}")
        conn.execute(f"CREATE TABLE {table.qualified_name} ({columns})")


def _create(engine, table: Table) -> None:
    engine.create(table)


def _append(engine, table: Table, data: pa.Table) -> None:
    engine._append(table, data)  # the bare primitive: no row checks, no logging


# engine name -> (create the scratch table, bulk-append to it); others use their own append.
_LOADERS: dict[str, tuple[Callable, Callable]] = {"PostgreSQL": (_create_bare, _binary_copy)}


def measure_floor(engine, input_dir: Path, settings: Settings) -> Floor:
    """One floor attempt on this engine (the refined layer's); its scratch tables are dropped
    afterwards."""
    create, load = _LOADERS.get(engine.name, (_create, _append))
    for table in (FLOOR_OBSERVATION, FLOOR_PATIENT):
        engine.drop(table)
        create(engine, table)
    try:
        started = time.perf_counter()
        observations, patients = read_inputs(input_dir)
        read = time.perf_counter()
        load(engine, FLOOR_OBSERVATION, observations)
        load(engine, FLOOR_PATIENT, patients)
        loaded = time.perf_counter()
        persons = derive_floor(observations, patients, settings)
        return Floor(read - started, loaded - read, time.perf_counter() - loaded,
                     observations.num_rows, persons)
    finally:
        for table in (FLOOR_OBSERVATION, FLOOR_PATIENT):
            engine.drop(table)


def derive_floor(observations: pa.Table, patients: pa.Table, settings: Settings) -> int:
    """The metrics of every person and their age-band summary, as derive computes them."""
    from vitalflow.derive.run import compute_bmi

    persons = patients.append_column("person_key", patients.column("patient_key"))
    latest = compute_bmi(observations.filter(observations.column("measure").is_valid()),
                         persons, settings.derive)
    duckdb.connect().execute(f"""
        SELECT {age_band_sql('age_years', settings.derive.age_bands)}, sex, weight_category,
               count(*), avg(bmi) FROM latest GROUP BY ALL""").fetchall()
    return latest.num_rows
