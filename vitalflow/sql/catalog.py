"""One catalog of names for every engine: which tables exist, who may read them, what they mean."""

from __future__ import annotations

from dataclasses import dataclass

from vitalflow.tables import DERIVED_TABLES, REFINED_TABLES, Table

ANALYST, ADMIN = "analyst", "admin"
ROLES = (ANALYST, ADMIN)
# Layers analysts read; identity (pseudonym -> source id) and audit data are never readable here,
# and raw records keep names and identifiers.
ANALYST_LAYERS = ("refined", "derived")
RESTRICTED_LAYERS = ("identity", "audit")


@dataclass(frozen=True)
class ColumnEntry:
    name: str
    type: str
    description: str
    unit: str | None = None
    pii: str = "none"
    upstream: tuple[str, ...] = ()  # column-level lineage: layer.table.column it comes from


@dataclass(frozen=True)
class TableEntry:
    name: str  # layer.table
    description: str
    columns: tuple[ColumnEntry, ...]
    roles: tuple[str, ...]
    owner: str | None = None  # the flow that writes it

    @property
    def layer(self) -> str:
        return self.name.split(".")[0]

    @property
    def table(self) -> str:
        return self.name.split(".")[1]

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "owner": self.owner,
                "columns": [c.__dict__ for c in self.columns]}


def _entry(table: Table, roles: tuple[str, ...] = ROLES) -> TableEntry:
    return TableEntry(table.qualified_name, table.description,
                      tuple(ColumnEntry(c.name, c.type, c.description, c.unit, str(c.pii),
                                        tuple(c.upstream)) for c in table.columns),
                      roles, table.owner)


RAW_RECORD = TableEntry(
    "raw.record", "Every input record as it arrived (names and identifiers included): admins only.",
    (ColumnEntry("raw_record_id", "text", "<batch_id>-<line or entry number>"),
     ColumnEntry("batch_id", "text", "SHA-256-based id of the input file"),
     ColumnEntry("source_uri", "text", "where the file came from"),
     ColumnEntry("record_number", "int", "line (NDJSON) or entry (Bundle) number"),
     ColumnEntry("raw_json", "text", "the record's text, untouched", pii="direct"),
     ColumnEntry("raw_bytes", "binary", "the record when it is not valid UTF-8", pii="direct")),
    (ADMIN,))

QUERY_LOG_ENTRY = TableEntry(
    "meta.query_log", "Every query through vitalflow sql and the console: who, rows, duration, "
    "outcome (admins only).",
    tuple(ColumnEntry(name, kind, text) for name, kind, text in (
        ("id", "int", "log sequence"), ("at", "timestamp", "when the query started"),
        ("user_name", "text", "console user or operating-system user"),
        ("role", "text", "analyst or admin"), ("engine", "text", "duckdb or trino"),
        ("profile", "text", "storage profile queried"), ("statement", "text", "the query text"),
        ("rows", "int", "rows returned"), ("duration_ms", "float", "wall time"),
        ("outcome", "text", "ok, refused, error or timeout"),
        ("message", "text", "why it was refused or failed")))
    , (ADMIN,))

TABLES: dict[str, Table] = {t.qualified_name: t
                            for t in REFINED_TABLES + DERIVED_TABLES}
LAYER_TABLES = tuple(_entry(t) for t in TABLES.values())
ENTRIES: dict[str, TableEntry] = {e.name: e for e in (*LAYER_TABLES, RAW_RECORD, QUERY_LOG_ENTRY)}


def readable(role: str) -> dict[str, TableEntry]:
    """The tables a role may read, by layer.table."""
    check_role(role)
    return {name: entry for name, entry in ENTRIES.items() if role in entry.roles}


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return role
