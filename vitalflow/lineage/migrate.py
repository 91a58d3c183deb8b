"""`vitalflow lineage migrate --to MODE`: move an existing database between the lineage options
without losing anything. Leaving hybrid archives meta.lineage to an owner-only JSON-lines file
(then drops it); entering hybrid restores that archive and backfills one row per batch already
refined (meta.refined_batch). Refined rows keep their keys in every option (docs/lineage.md)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from vitalflow.lineage.recorder import lineage_folder
from vitalflow.lineage.table import LINEAGE
from vitalflow.tables import RAW_RECORD

if TYPE_CHECKING:
    from vitalflow.config import Settings
    from vitalflow.storage import Layers

BEFORE_HYBRID = "unknown (refined before hybrid lineage)"


def archive_file(settings: Settings):
    return lineage_folder(settings) / "lineage-table.jsonl"


def migrate(settings: Settings, layers: Layers, to: str) -> dict[str, int]:
    if to not in ("file", "openlineage", "hybrid"):
        raise ValueError(f"unknown lineage mode {to!r}: file, openlineage or hybrid")
    with layers.control.connect() as conn:
        exists = conn.execute("SELECT to_regclass('meta.lineage')").fetchone()[0] is not None
    if to == "hybrid":
        return _enter_hybrid(settings, layers)
    return {"archived": _archive(settings, layers) if exists else 0}


def _archive(settings: Settings, layers: Layers) -> int:
    rows = layers.control.read(LINEAGE).to_pylist()
    path = archive_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, default=str) + "\n" for row in rows)
        handle.flush()
        os.fsync(handle.fileno())  # the archive is durable before the table goes
    with layers.control.connect() as conn:
        conn.execute("DROP TABLE meta.lineage")
    return len(rows)


def _enter_hybrid(settings: Settings, layers: Layers) -> dict[str, int]:
    layers.control.create(LINEAGE)
    path = archive_file(settings)
    restored = 0
    if path.exists():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line]
        for row in rows:
            row["written_at"] = datetime.fromisoformat(row["written_at"])
        if rows:
            restored = layers.control.upsert(
                LINEAGE, pa.Table.from_pylist(rows, schema=LINEAGE.arrow_schema))
        path.unlink()
    with layers.control.connect() as conn:
        backfilled = conn.execute("""
            INSERT INTO meta.lineage (run_id, job, table_name, batch_id, rows, code_version,
                                      written_at)
            SELECT run_id, 'refine', %s, batch_id, records, %s, refined_at
            FROM meta.refined_batch ON CONFLICT DO NOTHING""",
                                  (RAW_RECORD.qualified_name, BEFORE_HYBRID)).rowcount
    return {"restored": restored, "backfilled": backfilled}
