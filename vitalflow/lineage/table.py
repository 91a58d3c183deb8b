"""Hybrid mode's lineage table in the control database: which run wrote which rows of which table
from which raw batches, with which code, terminology and pseudonymisation key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from storage_backends.schema import Column as C
from storage_backends.schema import Pii, Table

if TYPE_CHECKING:
    from vitalflow.config import Settings
    from vitalflow.storage import Layers

LINEAGE = Table(
    "meta", "lineage", "Hybrid lineage mode: per run, job, table and raw batch, the rows "
    "written and the code, terminology and pseudonymisation key used.", "lineage",
    columns=(
        C("run_id", "text", "the pipeline run (meta.run)", nullable=False, pii=Pii.NONE,
          references="meta.run.run_id"),
        C("job", "text", "ingest, refine, derive_patient_bmi or derive_age_band_summary",
          nullable=False, pii=Pii.NONE),
        C("table_name", "text", "layer.table written; raw.record for a raw batch read",
          nullable=False, pii=Pii.NONE),
        C("batch_id", "text", "the raw batch read (rows of raw.record); '' on written tables",
          nullable=False, pii=Pii.NONE),
        C("rows", "int", "rows written, or records of the batch read", unit="{row}",
          pii=Pii.NONE),
        C("code_version", "text", "vitalflow version and git commit", nullable=False,
          pii=Pii.NONE),
        C("terminology", "json", "terminology step outcomes and server calls of the run",
          pii=Pii.NONE),
        C("pseudonym_key_id", "text", "id (never the key) of the pseudonymisation key",
          pii=Pii.NONE),
        C("written_at", "timestamp", "when the job completed", nullable=False, pii=Pii.NONE),
    ),
    primary_key=("run_id", "job", "table_name", "batch_id"),
    freshness="written_at",
)


def record(settings: Settings, layers: Layers, run_id: str, job: str, written: dict[str, int],
           batches: list[str], terminology: dict) -> int:
    """One row per table the job wrote and per raw batch it read; returns rows added."""
    from vitalflow.lineage.events import code_version

    key_id = None
    if settings.privacy.enabled:
        from vitalflow.privacy.keys import configured_key

        key = configured_key(settings.privacy, settings.paths.root)
        key_id = key.key_id if key else None
    records = {b.batch_id: b.records for b in layers.raw.manifest()} if batches else {}
    now = datetime.now(UTC)
    kept = ([(table, "", rows) for table, rows in sorted(written.items())]
            + [("raw.record", batch, records.get(batch)) for batch in batches])
    rows = [{"run_id": run_id, "job": job, "table_name": table, "batch_id": batch, "rows": n,
             "code_version": code_version(),
             "terminology": json.dumps(terminology) if terminology else None,
             "pseudonym_key_id": key_id, "written_at": now} for table, batch, n in kept]
    if not rows:
        return 0
    layers.control.create(LINEAGE)
    return layers.control.upsert(LINEAGE, pa.Table.from_pylist(rows))


def batch_history(conn, batch_id: str) -> list[dict]:
    """Hybrid rows about one raw batch (empty when the table does not exist)."""
    if conn.execute("SELECT to_regclass('meta.lineage')").fetchone()[0] is None:
        return []
    cursor = conn.execute("""
        SELECT run_id, job, table_name, rows, code_version, pseudonym_key_id, written_at
        FROM meta.lineage WHERE batch_id = %s ORDER BY written_at, table_name""", (batch_id,))
    names = [c.name for c in cursor.description]
    return [dict(zip(names, row)) | {"written_at": row[-1].isoformat()}
            for row in cursor.fetchall()]
