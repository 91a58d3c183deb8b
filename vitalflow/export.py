"""Export any table of any layer, from whichever backend holds it, to CSV or Parquet."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from vitalflow.ingest import RAW_SCHEMA
from vitalflow.storage import Layers
from vitalflow.tables import DERIVED_TABLES, REFINED_TABLES, Table

RAW_RECORD = "raw.record"
FORMATS = (".csv", ".parquet")
TABLES: dict[str, Table] = {t.qualified_name: t
                            for t in REFINED_TABLES + DERIVED_TABLES}


def require_administrator(name: str, project: Path, uid: int | None = None) -> None:
    """raw.record holds names, addresses and identifiers: only the project's administrator
    (the owner of the project folder, or root) may export it."""
    if name != RAW_RECORD:
        return
    uid = os.geteuid() if uid is None else uid
    owner = project.stat().st_uid if project.exists() else uid
    if uid not in (0, owner):
        raise PermissionError(f"{RAW_RECORD} holds patient names, addresses and identifiers: "
                              f"only the project's administrator (the owner of {project}) may "
                              "export it; analysts export refined.* and derived.* tables")


def known_tables() -> list[str]:
    return [RAW_RECORD, *TABLES]


def export_table(layers: Layers, name: str, out: Path, snapshot: int | None = None) -> int:
    """Write the table to out (format from its suffix), as of snapshot when given (engines
    with time travel only); returns the number of rows."""
    if out.suffix not in FORMATS:
        raise ValueError(f"cannot export to {out.name}: the file must end in "
                         f"{' or '.join(FORMATS)}")
    if name != RAW_RECORD and name not in TABLES:
        raise ValueError(f"unknown table {name!r}; known: {', '.join(known_tables())}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    holder = _holder(layers, name)
    if snapshot is not None and not (holder and holder.capabilities.time_travel):
        raise ValueError(f"{name} lives in {holder.name if holder else 'Parquet files'}, which "
                         "keeps no snapshots: export it without --snapshot")
    batches = (_raw_batches(layers, snapshot) if name == RAW_RECORD
               else _table_batches(layers, TABLES[name], snapshot))
    schema = RAW_SCHEMA if name == RAW_RECORD else TABLES[name].arrow_schema
    rows = 0
    if name == RAW_RECORD:  # identifiers: the copy is as private as the raw layer
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    writer = (pq.ParquetWriter(partial, schema, compression="zstd") if out.suffix == ".parquet"
              else pacsv.CSVWriter(partial, schema))
    try:
        with writer:
            for batch in batches:
                writer.write_table(pa.Table.from_batches([batch], schema) if isinstance(
                    batch, pa.RecordBatch) else batch)
                rows += batch.num_rows
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)  # a failed export leaves no half-written file under the real name
    return rows


def _holder(layers: Layers, name: str):
    """The backend holding a table; None for raw records kept as Parquet files."""
    if name == RAW_RECORD:
        return getattr(layers.raw, "backend", None)
    return layers.derived if name.startswith("derived.") else layers.refined


def _table_batches(layers: Layers, table: Table, snapshot: int | None):
    yield _holder(layers, table.qualified_name).read(table, snapshot=snapshot)


def _raw_batches(layers: Layers, snapshot: int | None):
    for batch in layers.raw.manifest():
        if snapshot is None:
            yield from layers.raw.read(batch.batch_id)
        else:
            yield from layers.raw.read(batch.batch_id, snapshot=snapshot)
