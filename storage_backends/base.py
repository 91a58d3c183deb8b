"""The storage interface: a small abstract backend over pyarrow.Table, in domain terms."""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from storage_backends.schema import Table

log = logging.getLogger("vitalflow.storage")

# A filter is (column, operator, value); a read's filters all hold (AND).
Filter = tuple[str, str, Any]
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null")


class BackendUnavailable(RuntimeError):
    """The engine cannot be reached; the message names the service and how to start it."""


class BackendMissing(ImportError):
    """The engine's Python package is not installed; the message says which extra to install."""


class DataError(ValueError):
    """Rows that do not fit the table's description (unknown column, null key, duplicate key)."""


def redact(text: str) -> str:
    """A URL or message without passwords or secret keys, safe for logs and errors."""
    text = re.sub(r"(://[^:/@\s]+):[^@\s]*@", r"\1:***@", text)
    return re.sub(r"(?i)(password|secret|secret_key|access_key|token)=([^&\s]+)", r"\1=***",
                  text)


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do; the pipeline and the conformance suite read these, not exceptions."""

    transactions: bool  # several writes to several tables commit or roll back together
    time_travel: bool  # reads can pin an earlier snapshot of a table
    enforces_keys: bool  # the engine itself rejects or merges a second row with the same key
    decimal: bool = True  # the 'decimal' logical type keeps its exact value
    max_filter_values: int = 100_000  # larger 'in' lists are filtered after reading


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: int
    committed_at: str
    operation: str
    rows: int | None = None


class Backend(ABC):
    """Template methods check rows against the table description, log, and count; engines
    implement the underscore primitives over pyarrow.Table."""

    name: ClassVar[str]  # the service, as a person would name it in an error
    capabilities: ClassVar[Capabilities]

    def __init__(self, url: str) -> None:
        self.url = url
        self.stats: Counter = Counter()  # rows and seconds per operation, for metrics

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(self.url)!r})"

    # -- template methods -------------------------------------------------------------------

    def create(self, table: Table) -> None:
        """Create the table (and its schema or namespace) if it does not exist."""
        with self._timed("create", table, 0):
            self._create(table)

    def append(self, table: Table, data: pa.Table) -> int:
        """Add rows; keys must not exist yet (use upsert otherwise)."""
        data = conform(table, data)
        with self._timed("append", table, data.num_rows):
            if data.num_rows:
                self._append(table, data)
        return data.num_rows

    def upsert(self, table: Table, data: pa.Table) -> int:
        """Insert rows, replacing any row with the same primary key; twice is the same as once."""
        data = conform(table, data)
        _require_unique_keys(table, data)
        with self._timed("upsert", table, data.num_rows):
            if data.num_rows:
                self._upsert(table, data)
        return data.num_rows

    def delete(self, table: Table, keys: pa.Table) -> int:
        """Delete the rows whose primary key is in keys; returns how many keys were given."""
        missing = [k for k in table.primary_key if k not in keys.column_names]
        if missing:
            raise DataError(f"delete from {table.qualified_name} needs key columns {missing}")
        keys = keys.select(list(table.primary_key)).cast(
            pa.schema([table.arrow_schema.field(k) for k in table.primary_key]))
        with self._timed("delete", table, keys.num_rows):
            if keys.num_rows:
                self._delete(table, keys)
        return keys.num_rows

    def read(self, table: Table, columns: Sequence[str] | None = None,
             where: Sequence[Filter] = (), snapshot: int | None = None) -> pa.Table:
        """Rows (one per key) with the chosen columns, typed as the description says."""
        columns = list(columns) if columns else table.column_names
        _check_columns(table, columns)
        where = [_check_filter(table, f) for f in where]
        if snapshot is not None and not self.capabilities.time_travel:
            raise NotImplementedError(f"{self.name} keeps no snapshots to read from")
        with self._timed("read", table, 0) as timing:
            large = [f for f in where if f[1] in ("in", "not in")
                     and len(f[2]) > self.capabilities.max_filter_values]
            pushed = [f for f in where if f not in large]
            needed = list(dict.fromkeys(columns + [f[0] for f in large]))
            result = self._read(table, needed, pushed, snapshot)
            for column, op, values in large:
                mask = pc.is_in(result.column(column), pa.array(list(values),
                                                                 table.column(column).arrow_type))
                result = result.filter(mask if op == "in" else pc.invert(mask))
            result = result.select(columns).cast(
                pa.schema([table.arrow_schema.field(c) for c in columns]))
            timing["rows"] = result.num_rows
        return result

    def count(self, table: Table) -> int:
        return self._count(table)

    def exists(self, table: Table) -> bool:
        return self._exists(table)

    def storage_bytes(self, table: Table) -> int:
        """Bytes the table occupies in the engine now (data, indexes, metadata), 0 when absent."""
        return self._storage_bytes(table) if self._exists(table) else 0

    def drop(self, table: Table) -> None:
        with self._timed("drop", table, 0):
            self._drop(table)

    def comments(self, table: Table) -> dict[str, str]:
        """The comments the engine holds: '' -> the table's, then column name -> its comment
        ('' where none), for every column the engine has; create() writes table.comment and
        each column's comment and refreshes them when the description changed."""
        return self._comments(table)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside commit together where the engine can (see capabilities.transactions).
        Elsewhere a write is atomic per table (Iceberg: one snapshot) or per insert block
        (ClickHouse: about 32 MiB); repeating a cut-short write is harmless, as upserts are
        idempotent."""
        with self._transaction():
            yield

    def snapshots(self, table: Table) -> list[Snapshot]:
        if not self.capabilities.time_travel:
            return []
        return self._snapshots(table)

    def close(self) -> None:
        """Release connections; the backend may be used again afterwards."""

    # -- primitives ---------------------------------------------------------------------------

    @abstractmethod
    def _create(self, table: Table) -> None: ...

    @abstractmethod
    def _append(self, table: Table, data: pa.Table) -> None: ...

    @abstractmethod
    def _upsert(self, table: Table, data: pa.Table) -> None: ...

    @abstractmethod
    def _delete(self, table: Table, keys: pa.Table) -> None: ...

    @abstractmethod
    def _read(self, table: Table, columns: list[str], where: list[Filter],
              snapshot: int | None) -> pa.Table: ...

    @abstractmethod
    def _count(self, table: Table) -> int: ...

    @abstractmethod
    def _exists(self, table: Table) -> bool: ...

    @abstractmethod
    def _drop(self, table: Table) -> None: ...

    @abstractmethod
    def _storage_bytes(self, table: Table) -> int: ...

    def _comments(self, table: Table) -> dict[str, str]:
        raise NotImplementedError(f"{self.name} cannot read comments back")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        yield

    def _snapshots(self, table: Table) -> list[Snapshot]:
        return []

    # -- helpers ------------------------------------------------------------------------------

    @contextmanager
    def _timed(self, operation: str, table: Table, rows: int) -> Iterator[dict]:
        timing = {"rows": rows}
        start = time.perf_counter()
        yield timing
        seconds = time.perf_counter() - start
        self.stats[f"{operation}.rows"] += timing["rows"]
        self.stats[f"{operation}.seconds"] += seconds
        log.debug("%s %s %s: %d rows in %.3f s", self.name, operation, table.qualified_name,
                  timing["rows"], seconds)


def conform(table: Table, data: pa.Table) -> pa.Table:
    """Rows cast to the table's schema: unknown columns are an error, absent nullable columns
    become nulls, and required columns must be present and non-null."""
    _check_columns(table, data.column_names)
    arrays = []
    for column in table.columns:
        if column.name in data.column_names:
            array = data.column(column.name)
            try:
                array = array.cast(column.arrow_type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(f"{table.qualified_name}.{column.name}: cannot store "
                                f"{array.type} as {column.type} ({exc})") from None
        elif column.nullable:
            array = pa.nulls(data.num_rows, column.arrow_type)
        else:
            raise DataError(f"{table.qualified_name}: required column {column.name} is missing")
        if not column.nullable and array.null_count:
            raise DataError(f"{table.qualified_name}.{column.name} may not be null "
                            f"({array.null_count} null values)")
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=table.arrow_schema)


def _check_columns(table: Table, columns: Sequence[str]) -> None:
    unknown = [c for c in columns if c not in table.column_names]
    if unknown:
        raise DataError(f"{table.qualified_name} has no column {', '.join(unknown)}")


def _check_filter(table: Table, where: Filter) -> Filter:
    column, op, value = where
    _check_columns(table, [column])
    if op not in OPERATORS:
        raise DataError(f"unknown filter operator {op!r}; use one of {', '.join(OPERATORS)}")
    if op in ("in", "not in"):
        value = list(value.to_pylist() if isinstance(value, (pa.Array, pa.ChunkedArray))
                     else value)
    return column, op, value


def _require_unique_keys(table: Table, data: pa.Table) -> None:
    if data.num_rows < 2:
        return
    keys = data.select(list(table.primary_key))
    if keys.group_by(list(table.primary_key)).aggregate([]).num_rows != data.num_rows:
        raise DataError(f"upsert into {table.qualified_name}: the rows repeat a primary key; "
                        "keep one row per key first")
