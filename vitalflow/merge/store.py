"""Persistence of merging in the restricted PostgreSQL schema `identity` over a psycopg connection.

Only the identity role may read this schema: it holds names, birth dates, addresses and source
identifiers. Nothing here logs or raises with any of those values.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
import pyarrow as pa

from storage_backends.sql import comment_statements, create_table
from vitalflow.merge.clustering import LINK_SCHEMA, OVERRIDE_SCHEMA, REVIEW_SCHEMA, Key
from vitalflow.merge.identity_rows import IDENTITY_SCHEMA
from vitalflow.merge.matching import PAIR_SCHEMA
from vitalflow.merge.survivorship import GOLDEN_SCHEMA
from vitalflow.tables import Column, Pii, Table

SCHEMA = "identity"
OWNER = "merge"
_PAIR_KEY = ("source_system_l", "source_id_l", "source_system_r", "source_id_r")
# First time a record was stored: its person's anchor is the record seen first.
SOURCE_RECORD_SCHEMA = IDENTITY_SCHEMA.append(
    pa.field("first_seen", pa.timestamp("us", tz="UTC"), False))
_DIRECT = {"source_id", "identifier_value", "given", "family", "address_line", "source_id_l",
           "source_id_r", "source_id_a", "source_id_b"}
_QUASI = {"birth_date", "postcode", "city"}
_TYPES = {pa.string(): "text", pa.float64(): "float", pa.int64(): "int", pa.date32(): "date",
          pa.timestamp("us", tz="UTC"): "timestamp"}


_DESCRIPTIONS = {
    "source_system": "source of the record: meta.source, else merge.default_source_system",
    "source_id": "the source's Patient.id",
    "identifier_system": "system of the identifier used by the deterministic rule",
    "identifier_value": "value of that identifier (e.g. the MRN)",
    "given": "given names as sent", "family": "family name as sent",
    "birth_date": "date of birth", "sex": "administrative gender (male, female, other)",
    "postcode": "postal code of the home address", "address_line": "street lines",
    "city": "city", "last_updated": "meta.lastUpdated of the (newest) record",
    "person_id": "the person (golden record); stable while its anchor record stays in it",
    "match_probability": "Splink match probability; 1 for identifier and manual links",
    "match_weight": "Splink match weight (log2 Bayes factor); null for identifier and manual",
    "rule": "manual, identifier, probabilistic, or single (no link)",
    "linked_at": "since when the record belongs to this person",
    "records": "number of source records of the person",
    "first_seen": "when the record was first stored",
    "decision": "always or never link the two records", "decided_at": "when it was decided",
}
_UNITS = {"match_probability": "1", "match_weight": "{log2 Bayes factor}", "records": "{record}"}
_SIDES = {"_l": "left record: ", "_r": "right record: ", "_a": "first record: ",
          "_b": "second record: "}


def _describe(name: str) -> str:
    side = _SIDES.get(name[-2:], "") if name not in _DESCRIPTIONS else ""
    return side + _DESCRIPTIONS[name[:-2] if side else name]


def _table(name: str, description: str, schema: pa.Schema, key: tuple[str, ...]) -> Table:
    columns = tuple(
        Column(f.name, _TYPES[f.type], _describe(f.name), nullable=f.nullable,
               unit=_UNITS.get(f.name),
               pii=Pii.DIRECT if f.name in _DIRECT else Pii.QUASI if f.name in _QUASI
               else Pii.PSEUDONYM if f.name.startswith("person_id") else Pii.NONE)
        for f in schema)
    return Table(SCHEMA, name, description, OWNER, columns, key)


SOURCE_RECORD = _table("source_record", "Identity attributes of each source Patient record "
                       "(newest version).", SOURCE_RECORD_SCHEMA, ("source_system", "source_id"))
PERSON_LINK = _table("person_link", "The person each source record belongs to, with the rule "
                     "and match weight of its strongest link.", LINK_SCHEMA,
                     ("source_system", "source_id"))
PERSON = _table("person", "Golden record per person (survivorship rules in docs/merging.md).",
                GOLDEN_SCHEMA, ("person_id",))
MATCH_PAIR = _table("match_pair", "Scored candidate pairs at or above the review threshold.",
                    PAIR_SCHEMA, _PAIR_KEY)
REVIEW_PAIR = _table("review_pair", "Probabilistic pairs left in two persons with no decision: "
                     "what `vitalflow merge review` lists.", REVIEW_SCHEMA, _PAIR_KEY)
LINK_OVERRIDE = _table("link_override", "Reviewers' decisions: always or never link two "
                       "records; every run respects them.", OVERRIDE_SCHEMA,
                       ("source_system_a", "source_id_a", "source_system_b", "source_id_b"))
TABLES = (SOURCE_RECORD, PERSON_LINK, PERSON, MATCH_PAIR, REVIEW_PAIR, LINK_OVERRIDE)


def ensure_schema(conn: psycopg.Connection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table in TABLES:
        conn.execute(create_table(table))
        for statement in comment_statements(table):
            conn.execute(statement)
    conn.execute(f"CREATE INDEX IF NOT EXISTS person_link_person_idx "
                 f"ON {PERSON_LINK.qualified_name} (person_id)")


def lock(conn: psycopg.Connection) -> None:
    """Serialises merge runs and reviewers' changes until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalflow.identity'))")


def upsert_identities(conn: psycopg.Connection, identities: pa.Table, now: datetime) -> None:
    """New records are added (first seen `now`); a known record's attributes are replaced
    unless what is stored is newer by meta.lastUpdated."""
    columns = IDENTITY_SCHEMA.names
    conn.execute(f"CREATE TEMP TABLE identity_stage AS SELECT {', '.join(columns)} "
                 f"FROM {SOURCE_RECORD.qualified_name} WITH NO DATA")
    _copy(conn, "identity_stage", identities.select(columns))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[2:])
    conn.execute(
        f"INSERT INTO {SOURCE_RECORD.qualified_name} ({', '.join(columns)}, first_seen) "
        f"SELECT DISTINCT ON (source_system, source_id) {', '.join(columns)}, %s "
        "FROM identity_stage ORDER BY source_system, source_id, last_updated DESC NULLS LAST "
        f"ON CONFLICT (source_system, source_id) DO UPDATE SET {updates} "
        f"WHERE {SOURCE_RECORD.qualified_name}.last_updated IS NULL "
        f"OR excluded.last_updated >= {SOURCE_RECORD.qualified_name}.last_updated", [now])
    conn.execute("DROP TABLE identity_stage")


def load(conn: psycopg.Connection, table: Table) -> pa.Table:
    """A whole identity table, in primary-key order, as Arrow with the module's schema."""
    schema = _SCHEMAS[table.name]
    cursor = conn.execute(f"SELECT {', '.join(schema.names)} FROM {table.qualified_name} "
                          f"ORDER BY {', '.join(table.primary_key)}")
    return pa.Table.from_pylist([dict(zip(schema.names, row, strict=True))
                                 for row in cursor.fetchall()], schema=schema)


def replace(conn: psycopg.Connection, table: Table, data: pa.Table) -> None:
    """Replace a table's whole content (within the caller's transaction)."""
    conn.execute(f"DELETE FROM {table.qualified_name}")
    _copy(conn, table.qualified_name, data.select(table.column_names))


def _copy(conn: psycopg.Connection, target: str, data: pa.Table) -> None:
    # Row-wise COPY: these tables are small (one row per patient record), and psycopg adapts
    # dates, times and nulls itself.
    with conn.cursor().copy(f"COPY {target} ({', '.join(data.column_names)}) FROM STDIN") as copy:
        for batch in data.to_batches():
            for row in zip(*(column.to_pylist() for column in batch.columns)):
                copy.write_row(row)


def save_overrides(conn: psycopg.Connection, overrides: pa.Table) -> None:
    """Record decisions; a new decision on a pair replaces the old one."""
    for row in overrides.to_pylist():
        conn.execute(
            f"INSERT INTO {LINK_OVERRIDE.qualified_name} VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (source_system_a, source_id_a, source_system_b, source_id_b) "
            "DO UPDATE SET decision = excluded.decision, decided_at = excluded.decided_at",
            [row[name] for name in OVERRIDE_SCHEMA.names])


def known(conn: psycopg.Connection, record: Key) -> bool:
    return conn.execute(f"SELECT 1 FROM {SOURCE_RECORD.qualified_name} "
                        "WHERE source_system = %s AND source_id = %s", record).fetchone() is not None


def review_with_attributes(conn: psycopg.Connection, limit: int) -> list[dict]:
    """Borderline pairs, most likely first, each with both records' attributes (identity role
    only: this is what a reviewer needs to decide)."""
    shown = ("given", "family", "birth_date", "sex", "postcode", "address_line", "city",
             "identifier_system", "identifier_value")
    side = ", ".join(f"{s}.{c} AS {c}_{s}" for s in ("l", "r") for c in shown)
    cursor = conn.execute(
        f"SELECT p.*, {side} FROM {REVIEW_PAIR.qualified_name} p "
        f"JOIN {SOURCE_RECORD.qualified_name} l ON l.source_system = p.source_system_l "
        "AND l.source_id = p.source_id_l "
        f"JOIN {SOURCE_RECORD.qualified_name} r ON r.source_system = p.source_system_r "
        "AND r.source_id = p.source_id_r "
        "ORDER BY p.match_probability DESC, p.source_system_l, p.source_id_l, "
        "p.source_system_r, p.source_id_r LIMIT %s", [limit])
    names = [d.name for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


_SCHEMAS = {"source_record": SOURCE_RECORD_SCHEMA, "person_link": LINK_SCHEMA, "person": GOLDEN_SCHEMA,
            "match_pair": PAIR_SCHEMA, "review_pair": REVIEW_SCHEMA,
            "link_override": OVERRIDE_SCHEMA}
