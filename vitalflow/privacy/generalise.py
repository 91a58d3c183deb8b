"""Generalisation of quasi-identifiers and per-patient date shifting, column-wise over Arrow."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def truncate_dates(values: pa.Array | pa.ChunkedArray, granularity: str) -> pa.Array:
    """Dates to the first day of their year or month ('none' keeps them)."""
    if granularity == "none":
        return values
    return pc.floor_temporal(values, unit=granularity)


def truncate_postcodes(values: pa.Array | pa.ChunkedArray, keep: int) -> pa.Array:
    """The first `keep` characters of each postcode (the area), or nulls when keep is 0."""
    if keep == 0:
        return pa.nulls(len(values), pa.string())
    trimmed = pc.utf8_upper(pc.utf8_trim_whitespace(values))
    return pc.utf8_slice_codeunits(trimmed, 0, keep)


def shift_dates(values: pa.Array | pa.ChunkedArray, days: pa.Array) -> pa.Array:
    """Each date or timestamp moved by its row's number of days (nulls stay null)."""
    if pa.types.is_date32(values.type):
        moved = pc.add(pc.cast(values, pa.int32()), pc.cast(days, pa.int32()))
        return pc.cast(moved, pa.date32())
    if pa.types.is_timestamp(values.type):
        per_day = _PER_DAY[values.type.unit]
        offsets = pc.cast(pc.multiply(pc.cast(days, pa.int64()), per_day),
                          pa.duration(values.type.unit))
        return pc.add(values, offsets)
    raise TypeError(f"cannot shift a column of type {values.type}")
