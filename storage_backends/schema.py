"""Table descriptions as data: the engines build DDL, conform rows and document from these.

The domain (vitalflow/tables.py) declares its tables with these classes and hands them to a
backend; nothing here knows what the tables mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class Pii(StrEnum):
    """How identifying a column is; drives what analysts may see."""

    NONE = "none"
    PSEUDONYM = "pseudonym"  # a key standing for a person, not a direct identifier
    QUASI = "quasi"  # identifying in combination (birth date, postcode)
    DIRECT = "direct"  # names, identifier values, raw FHIR text
    RECORD_ID = "record_id"  # identifies a source or raw record, so it leads back to one person


# Logical type -> (Arrow type, PostgreSQL type)
TYPES: dict[str, tuple[pa.DataType, str]] = {
    "text": (pa.string(), "text"),
    "int": (pa.int64(), "bigint"),
    "float": (pa.float64(), "double precision"),
    "bool": (pa.bool_(), "boolean"),
    "date": (pa.date32(), "date"),
    "timestamp": (pa.timestamp("us", tz="UTC"), "timestamptz"),
    "json": (pa.string(), "jsonb"),
    "decimal": (pa.decimal128(18, 6), "numeric(18,6)"),
    "binary": (pa.binary(), "bytea"),
}
NUMERIC_TYPES = frozenset({"int", "float", "decimal"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    nullable: bool = True
    unit: str | None = None  # UCUM; numeric columns need one ('{count}' style for counts)
    pii: Pii | None = None  # None: not yet classified (vitalflow dictionary check fails)
    fhir_source: str | None = None  # FHIRPath of the element it comes from, and how
    binding: str | None = None  # canonical URL of the ValueSet (or code list) its values are from
    upstream: tuple[str, ...] = ()  # layer.table.column it is computed from (lineage)
    references: str | None = None  # layer.table.column it points at (a join key)

    @property
    def arrow_type(self) -> pa.DataType:
        return TYPES[self.type][0]

    @property
    def sql_type(self) -> str:
        return TYPES[self.type][1]

    @property
    def comment(self) -> str:
        """The text every engine stores as the column's comment or doc."""
        return self.description + (f" [{self.unit}]" if self.unit else "")


@dataclass(frozen=True)
class Index:
    """A secondary index an engine with indexes builds; others ignore it."""

    columns: tuple[str, ...]
    method: str = "btree"  # PostgreSQL access method: btree, brin, hash, ...

    def name(self, table: str) -> str:
        return f"{table}_{'_'.join(self.columns)}"


@dataclass(frozen=True)
class Table:
    layer: str
    name: str
    description: str
    owner: str  # the one flow allowed to write it
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[Index, ...] = ()
    freshness: str | None = None  # timestamp column whose newest value says how fresh it is

    @property
    def qualified_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def comment(self) -> str:
        """The text every engine stores as the table's comment."""
        return self.description

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in self.columns])

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)
