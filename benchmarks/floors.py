"""The floor of each storage profile: a bare bulk load of the raw records into the refined
layer's engine, and the derive query over every person with nothing else around it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import duckdb
import pyarrow as pa

from vitalflow.config import Settings
from vitalflow.derive.sql import age_band_sql
from vitalflow.storage import Layers
from vitalflow.tables import OBSERVATION, PATIENT, Column, Table

FLOOR_TABLE = Table(
    "bench", "floor_raw", "Scratch table of the load floor: raw records, no other work.",
    owner="bench",
    columns=(Column("raw_record_id", "text", "raw record id", nullable=False),
             Column("batch_id", "text", "raw batch", nullable=False),
             Column("source_uri", "text", "input file", nullable=False),
             Column("record_number", "int", "line in the input file", nullable=False),
             Column("raw_json", "text", "the record's text")),
    primary_key=("raw_record_id",))
# One engine write per this many rows: an Iceberg append is a commit, so it must not be tiny.
LOAD_ROWS = 250_000


def _raw_chunks(layers: Layers, batch_rows: int) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in layers.raw.manifest():
        for records in layers.raw.read(batch.batch_id, batch_rows):
            pending.append(records)
            rows += records.num_rows
            if rows >= LOAD_ROWS:
                yield _floor_rows(pending)
                pending, rows = [], 0
    if pending:
        yield _floor_rows(pending)


def _floor_rows(batches: list[pa.RecordBatch]) -> pa.Table:
    table = pa.Table.from_batches(batches)
    return table.select(FLOOR_TABLE.column_names).cast(FLOOR_TABLE.arrow_schema)


def load_floor(layers: Layers, settings: Settings, advance=lambda rows: None) -> tuple[float, int]:
    """(seconds, rows): read every raw batch and append it as it is to a new table on the
    refined layer's engine through its own bulk path (COPY, Iceberg append, ClickHouse insert),
    skipping the interface's row checks. The table is dropped afterwards."""
    engine = layers.refined
    engine.drop(FLOOR_TABLE)
    engine.create(FLOOR_TABLE)  # setup, not part of the floor
    rows = 0
    try:
        started = time.perf_counter()
        for chunk in _raw_chunks(layers, settings.ingest.batch_rows):
            engine._append(FLOOR_TABLE, chunk)  # the bare primitive: no validation, no logging
            rows += chunk.num_rows
            advance(chunk.num_rows)
        return time.perf_counter() - started, rows
    finally:
        engine.drop(FLOOR_TABLE)


def derive_floor(layers: Layers, settings: Settings) -> tuple[float, int]:
    """(seconds, persons): the metrics of every person and their age-band summary, computed as
    derive computes them but with no change detection, no comparison and no writes."""
    started = time.perf_counter()
    persons = _derive_floor(layers, settings)
    return time.perf_counter() - started, persons


def _derive_floor(layers: Layers, settings: Settings) -> int:
    from vitalflow.derive.run import compute_bmi

    patients = layers.refined.read(PATIENT, ["patient_key", "person_key", "gender", "birth_date"])
    observations = layers.refined.read(
        OBSERVATION, ["patient_key", "observation_id", "measure", "value", "effective_at"],
        where=[("measure", "in", ["body_height", "body_weight"])])
    latest = compute_bmi(observations, patients, settings.derive)
    duckdb.connect().execute(f"""
        SELECT {age_band_sql('age_years', settings.derive.age_bands)}, sex, weight_category,
               count(*), avg(bmi) FROM latest GROUP BY ALL""").fetchall()
    return latest.num_rows
