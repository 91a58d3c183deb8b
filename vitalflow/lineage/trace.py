"""Trace a derived or refined value back to its raw records, batch, file and line, and the runs
that wrote each step; and the impact of one input file or batch. Needs only the keys the rows
carry (the raw record id is <batch_id>-<line>), so it works in every lineage mode."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.control import target_of
from vitalflow.ingest import Batch
from vitalflow.lineage.table import batch_history
from vitalflow.derive.sql import age_band_sql
from vitalflow.tables import (AGE_BAND_SUMMARY, OBSERVATION, PATIENT, PATIENT_BMI_LATEST,
                              QUARANTINE)

if TYPE_CHECKING:
    from vitalflow.storage import Layers

TRACEABLE = (PATIENT_BMI_LATEST.qualified_name, OBSERVATION.qualified_name,
             PATIENT.qualified_name)
_OBSERVATION_COLUMNS = ["observation_id", "measure", "value", "unit", "effective_at", "version",
                        "raw_record_id", "refined_at", "code_system_version"]


def split_record_id(raw_record_id: str) -> tuple[str, int]:
    """<batch_id>-<line or entry number> -> (batch_id, number)."""
    batch_id, _, number = raw_record_id.rpartition("-")
    return batch_id, int(number)


def trace(layers: Layers, table: str, key: str) -> dict:
    """The row of table with this key and, step by step, where it came from."""
    if table not in TRACEABLE:
        raise ValueError(f"trace works on {', '.join(TRACEABLE)}, not {table!r}")
    # One connection for every look-up: the ledger's, and the rows' where a layer lives in the
    # control database (a transaction shares its connection with reads).
    with layers.control.transaction(), layers.control.connect() as conn:
        return _trace(_Tracer(layers, conn), table, key)


def _trace(tracer: _Tracer, table: str, key: str) -> dict:
    layers = tracer.layers
    if table == PATIENT_BMI_LATEST.qualified_name:
        rows = layers.derived.read(PATIENT_BMI_LATEST, where=[("patient_key", "in", [key])])
        if not rows.num_rows:
            raise LookupError(f"no row with patient_key {key} in {table}")
        row = rows.to_pylist()[0]
        used = [i for i in (row["weight_observation_id"], row["height_observation_id"]) if i]
        return {"table": table, "key": key, "row": _jsonable(row),
                "written_by": tracer.derive_step(), "observations": tracer.observations(used)}
    if table == OBSERVATION.qualified_name:
        found = tracer.observations([key])
        if not found:
            raise LookupError(f"no row with observation_id {key} in {table}")
        return {"table": table, "key": key, "observations": found}
    rows = layers.refined.read(PATIENT, ["patient_key", "gender", "version", "raw_record_id",
                                         "refined_at"], where=[("patient_key", "in", [key])])
    if not rows.num_rows:
        raise LookupError(f"no row with patient_key {key} in {table}")
    row = rows.to_pylist()[0]
    return {"table": table, "key": key, "row": _jsonable(row),
            "raw": tracer.raw_step(row["raw_record_id"])}


class _Tracer:
    def __init__(self, layers: Layers, conn) -> None:
        self.layers = layers
        self.conn = conn
        self.batches = {b.batch_id: b for b in layers.raw.manifest()}
        self.target = target_of(layers.refined, layers.control)

    def observations(self, ids: list[str]) -> list[dict]:
        rows = self.layers.refined.read(OBSERVATION, _OBSERVATION_COLUMNS,
                                        where=[("observation_id", "in", ids)])
        by_id = {r["observation_id"]: r for r in rows.to_pylist()}
        return [_jsonable(by_id[i]) | {"raw": self.raw_step(by_id[i]["raw_record_id"])}
                for i in ids if i in by_id]

    def raw_step(self, raw_record_id: str) -> dict:
        batch_id, number = split_record_id(raw_record_id)
        batch: Batch | None = self.batches.get(batch_id)
        refined = self.conn.execute("""
            SELECT b.run_id, b.refined_at, r.status FROM meta.refined_batch b
            LEFT JOIN meta.run r USING (run_id) WHERE b.target = %s AND b.batch_id = %s""",
                                    (self.target, batch_id)).fetchone()
        return {
            "raw_record_id": raw_record_id, "batch_id": batch_id,
            "line": number if batch is None or batch.format == "ndjson" else None,
            "entry": number if batch is not None and batch.format != "ndjson" else None,
            "source_file": batch.source_uri if batch else None,
            "source_path": _local_path(batch.source_uri) if batch else None,
            "file_sha256": batch.file_sha256 if batch else None,
            "ingested_at": batch.ingested_at if batch else None,
            "ingest_code_version": batch.vitalflow_version if batch else None,
            "refine_run_id": refined[0] if refined else None,
            "refined_at": refined[1].isoformat() if refined else None,
            "refine_run_status": refined[2] if refined else None,
            "history": batch_history(self.conn, batch_id),  # hybrid mode only
        }

    def derive_step(self) -> dict:
        row = self.conn.execute("""
            SELECT change_seq, derived_at FROM meta.derive_watermark
            WHERE target = %s AND table_name = %s""",
                                (target_of(self.layers.derived, self.layers.control),
                                 PATIENT_BMI_LATEST.qualified_name)).fetchone()
        return {"job": PATIENT_BMI_LATEST.owner,
                "derived_up_to_change_seq": row[0] if row else None,
                "derived_at": row[1].isoformat() if row else None}


def find_batch(layers: Layers, file_or_batch: str) -> Batch:
    """A batch by its id, by the file it was read from, or by the content of a file at hand."""
    batches = layers.raw.manifest()
    for batch in batches:
        if file_or_batch in (batch.batch_id, batch.source_uri, batch.file_sha256):
            return batch
    path = Path(file_or_batch)
    if path.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        for batch in batches:
            if batch.file_sha256 == digest or batch.source_uri == path.resolve().as_uri():
                return batch
    matches = [b for b in batches if Path(b.source_uri).name == path.name]
    if len(matches) == 1:
        return matches[0]
    raise LookupError(f"no raw batch for {file_or_batch!r}" if not matches else
                      f"{len(matches)} batches came from files named {path.name}: give the "
                      "batch id or the full path")


def impact(layers: Layers, file_or_batch: str, age_bands: list[int]) -> dict:
    """Which refined and derived rows came from one input file or batch (age_bands: derive's,
    to name the summary groups those rows count in)."""
    batch = find_batch(layers, file_or_batch)
    prefix = f"{batch.batch_id}-"
    observations = _from_batch(layers.refined.read(OBSERVATION, [
        "observation_id", "patient_key", "raw_record_id"]), prefix)
    patients = _from_batch(layers.refined.read(PATIENT, ["patient_key", "raw_record_id"]), prefix)
    quarantined = layers.refined.read(QUARANTINE, ["raw_record_id"],
                                      where=[("batch_id", "in", [batch.batch_id])]).num_rows
    ids = observations.column("observation_id")
    derived = layers.derived.read(PATIENT_BMI_LATEST, [
        "patient_key", "height_observation_id", "weight_observation_id", "age_years", "sex",
        "weight_category"])
    used = pc.or_(pc.fill_null(pc.is_in(derived.column("height_observation_id"), ids), False),
                  pc.is_in(derived.column("weight_observation_id"), ids))
    affected = derived.filter(used)  # noqa: F841 - DuckDB reads it by name
    groups = duckdb.connect().execute(f"""
        SELECT DISTINCT {age_band_sql('age_years', age_bands)} AS age_band, sex,
               weight_category FROM affected ORDER BY ALL""").fetchall()
    derived_keys = affected.column("patient_key").to_pylist()
    return {"batch_id": batch.batch_id, "source_file": batch.source_uri,
            "records": batch.records, "refined": {
                OBSERVATION.qualified_name: observations.num_rows,
                PATIENT.qualified_name: patients.num_rows,
                QUARANTINE.qualified_name: quarantined},
            "derived": {PATIENT_BMI_LATEST.qualified_name: len(derived_keys),
                        AGE_BAND_SUMMARY.qualified_name: len(groups)},
            "summary_groups": [dict(zip(("age_band", "sex", "weight_category"), g))
                               for g in groups],
            "derived_keys": sorted(derived_keys),
            "observation_ids": sorted(ids.to_pylist())}


def _from_batch(rows: pa.Table, prefix: str) -> pa.Table:
    return rows.filter(pc.starts_with(rows.column("raw_record_id"), prefix))


def _local_path(uri: str) -> str | None:
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme == "file" else None


def _jsonable(row: dict) -> dict:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
