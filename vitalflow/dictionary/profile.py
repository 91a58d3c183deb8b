"""The live profile: what the data shows per column, never a value that could identify a person."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from storage_backends.base import Backend, redact
from vitalflow.storage import Layers
from vitalflow.tables import (DERIVED_TABLES, META_TABLES, QUARANTINE,
                              RAW_BATCH, REFINED_TABLES, Column, Pii, Table)

K = 10  # smallest count shown for a category: smaller cells could single a person out
TOP = 5
_ORDERED = {"int", "float", "decimal", "date", "timestamp"}


def profile_layers(layers: Layers, k: int = K,
                   progress: Callable[[str], None] = lambda name: None) -> dict[str, Any]:
    """Per table: rows, newest row, and per column null share, distinct count, min/max or top
    values; per quarantine reason its record count. Columns with a PII class other than none
    show counts only, and categories (and reasons) with fewer than k rows are suppressed."""
    where = [(layers.refined, t) for t in REFINED_TABLES]
    where += [(layers.derived, t) for t in DERIVED_TABLES]
    where += [(layers.control, t) for t in META_TABLES if t.name != "terminology_cache"]
    found: dict[str, Any] = {}
    for backend, table in where:
        progress(table.qualified_name)
        found[table.qualified_name] = profile_table(table, _reader(backend, table), k,
                                                    redact(backend.url))
    progress(RAW_BATCH.qualified_name)
    manifest = pa.Table.from_pylist(
        [vars(b) | {"ingested_at": datetime.fromisoformat(b.ingested_at)}
         for b in layers.raw.manifest()], schema=RAW_BATCH.arrow_schema)
    found[RAW_BATCH.qualified_name] = profile_table(
        RAW_BATCH, lambda column: manifest.column(column), k, "raw manifest")
    reasons = _reader(layers.refined, QUARANTINE)("reason")
    return {"profiled_at": _now(), "k": k, "tables": found,
            "quarantine_reasons": _counts(reasons, k)}


def _reader(backend: Backend, table: Table) -> Callable[[str], pa.ChunkedArray]:
    # One column at a time: a wide table never sits in memory whole.
    return lambda column: backend.read(table, [column]).column(column)


def profile_table(table: Table, read: Callable[[str], pa.ChunkedArray], k: int,
                  where: str) -> dict[str, Any]:
    columns = {c.name: column_stats(c, read(c.name), k) for c in table.columns}
    rows = next(iter(columns.values()))["rows"] if columns else 0
    newest = columns[table.freshness].get("max") if table.freshness else None
    return {"rows": rows, "newest": newest, "where": where, "profiled_at": _now(), "k": k,
            "columns": {name: {key: value for key, value in stats.items() if key != "rows"}
                        for name, stats in columns.items()}}


def column_stats(column: Column, values: pa.ChunkedArray, k: int) -> dict[str, Any]:
    rows = len(values)
    stats: dict[str, Any] = {"rows": rows, "null_share": values.null_count / rows if rows else 0.0,
                             "distinct": pc.count_distinct(values).as_py() if rows else 0}
    if column.pii is not Pii.NONE:  # values that could identify someone: counts only
        return stats | {"hidden": True}
    if column.type in _ORDERED:
        low, high = pc.min_max(values).values() if rows else (pa.scalar(None), pa.scalar(None))
        return stats | {"min": _text(low.as_py()), "max": _text(high.as_py())}
    if column.type in ("text", "bool"):
        counts = _counts(values, k)
        shown = [{"value": v, "count": n} for v, n in counts["shown"].items()][:TOP]
        return stats | {"top": shown, "suppressed": counts["suppressed"]}
    return stats


def _counts(values: pa.ChunkedArray, k: int) -> dict[str, Any]:
    """Counts per value, most frequent first; values with fewer than k rows are not named."""
    pairs = pc.value_counts(values.drop_null()).to_pylist() if len(values) else []
    pairs.sort(key=lambda p: (-p["counts"], str(p["values"])))
    return {"shown": {str(p["values"]): p["counts"] for p in pairs if p["counts"] >= k},
            "suppressed": sum(1 for p in pairs if p["counts"] < k)}


def _text(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
