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
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    nullable: bool = True
    unit: str | None = None
    pii: Pii = Pii.NONE

    @property
    def arrow_type(self) -> pa.DataType:
        return TYPES[self.type][0]

    @property
    def sql_type(self) -> str:
        return TYPES[self.type][1]


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

    @property
    def qualified_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in self.columns])

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)
