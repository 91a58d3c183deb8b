"""Creates the refined, derived and meta schemas from the table descriptions; table ownership."""

from __future__ import annotations

import logging

import psycopg

from typing import TYPE_CHECKING

from storage_backends.postgres import PostgresBackend
from storage_backends.sql import comment_statements
from vitalflow.privacy.identity import ensure_identity_schema, grant_access
from vitalflow.tables import (DERIVED_TABLES, META_TABLES, OBSERVATION_PENDING, REFINED_TABLES,
                              Table)
from vitalflow.terminology.cache import DDL as TERMINOLOGY_CACHE_DDL

if TYPE_CHECKING:
    from vitalflow.storage import Layers

log = logging.getLogger("vitalflow.database")

_META_DDL = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE SEQUENCE IF NOT EXISTS meta.change_seq;
CREATE TABLE IF NOT EXISTS meta.run (
  run_id text PRIMARY KEY, started_at timestamptz NOT NULL, finished_at timestamptz,
  status text NOT NULL, counts jsonb);
-- target: where the layer lives ('control' or the backend URL without secrets), so profiles
-- sharing this control database keep separate ledgers.
CREATE TABLE IF NOT EXISTS meta.refined_batch (
  target text NOT NULL, batch_id text NOT NULL, run_id text NOT NULL,
  refined_at timestamptz NOT NULL, records bigint NOT NULL, PRIMARY KEY (target, batch_id));
-- Observations the terminology server could not check yet; the next refine retries them.
CREATE TABLE IF NOT EXISTS meta.terminology_pending (
  target text NOT NULL, raw_record_id text NOT NULL, batch_id text NOT NULL,
  parked_at timestamptz NOT NULL, PRIMARY KEY (target, raw_record_id));
CREATE TABLE IF NOT EXISTS meta.derive_watermark (
  target text NOT NULL, table_name text NOT NULL, change_seq bigint NOT NULL,
  derived_at timestamptz NOT NULL, PRIMARY KEY (target, table_name));
CREATE TABLE IF NOT EXISTS meta.patient_touch (
  patient_key text NOT NULL, change_seq bigint NOT NULL);
CREATE INDEX IF NOT EXISTS patient_touch_seq ON meta.patient_touch (change_seq);
CREATE OR REPLACE FUNCTION meta.touch_old_patient() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- A newer version may name another patient: the old one's derived rows must change too.
  INSERT INTO meta.patient_touch VALUES (OLD.patient_key, nextval('meta.change_seq'));
  RETURN NULL;
END $$;
CREATE TABLE IF NOT EXISTS meta.table_owner (
  table_name text PRIMARY KEY, owner_flow text NOT NULL);
CREATE OR REPLACE FUNCTION meta.enforce_owner() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  owner text;
  writer text := coalesce(nullif(current_setting('vitalflow.flow', true), ''), '<none>');
BEGIN
  SELECT owner_flow INTO owner FROM meta.table_owner
   WHERE table_name = TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
  IF owner IS DISTINCT FROM writer THEN
    RAISE EXCEPTION 'table %.% is owned by flow %; writer % refused',
      TG_TABLE_SCHEMA, TG_TABLE_NAME, owner, writer USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NULL;
END $$;
"""

# Secondary indexes of refined.observation: dropped and rebuilt around a first bulk load.
_OBSERVATION_INDEXES = (
    # Derive reads one patient's few dozen observations at a time: the patient key alone is
    # selective enough, and a narrow index is cheaper to maintain.
    "CREATE INDEX IF NOT EXISTS observation_patient ON refined.observation (patient_key)",
    # change_seq grows with insertion order: a BRIN index finds recent changes at a fraction
    # of a B-tree's write cost.
    "CREATE INDEX IF NOT EXISTS observation_change_seq ON refined.observation "
    "USING brin (change_seq)",
)
_INDEXES = (
    "DROP INDEX IF EXISTS refined.observation_patient_measure_time",
    *_OBSERVATION_INDEXES,
    "CREATE INDEX IF NOT EXISTS patient_change_seq ON refined.patient USING brin (change_seq)",
    # Derive gathers each person's records.
    "CREATE INDEX IF NOT EXISTS patient_person ON refined.patient (person_key)",
    "CREATE INDEX IF NOT EXISTS observation_pending_patient "
    "ON refined.observation_pending (patient_key)",
)


def drop_observation_indexes(conn: psycopg.Connection) -> None:
    """Before a bulk load into an empty refined.observation: building indexes once afterwards
    costs a fraction of maintaining them row by row."""
    conn.execute("ALTER TABLE refined.observation DROP CONSTRAINT observation_pkey")
    conn.execute("DROP INDEX refined.observation_patient, refined.observation_change_seq")


def create_observation_indexes(conn: psycopg.Connection) -> None:
    conn.execute("ALTER TABLE refined.observation ADD CONSTRAINT observation_pkey "
                 "PRIMARY KEY (observation_id)")
    for statement in _OBSERVATION_INDEXES:
        conn.execute(statement)


class OwnershipError(PermissionError):
    """A flow tried to write a derived table that another flow owns."""


def ensure_layers(layers: Layers) -> None:
    """Create or update every table of the profile and the control schema; safe on every run."""
    control = layers.control
    with control.connect() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalflow.ddl'))")
        conn.execute(_META_DDL)
        # Created here too, not only on the first terminology check, so its comments are kept.
        conn.execute(TERMINOLOGY_CACHE_DDL)
        for table in META_TABLES:
            for statement in comment_statements(table):
                conn.execute(statement)
        for table in DERIVED_TABLES:
            conn.execute("INSERT INTO meta.table_owner VALUES (%s, %s) ON CONFLICT (table_name) "
                         "DO UPDATE SET owner_flow = EXCLUDED.owner_flow",
                         (table.qualified_name, table.owner))
        ensure_identity_schema(conn)
        if layers.refined_in_control:
            _ensure_refined_sql(control, conn)
        if layers.all_in_control:
            control.ensure_tables(conn, DERIVED_TABLES)
            for table in DERIVED_TABLES:
                _install_owner_trigger(conn, table)
        missing = grant_access(conn)
    if missing:
        log.warning("roles %s do not exist: analyst and re-identification grants skipped "
                    "(the embedded server creates them; elsewhere see docs/privacy.md)",
                    ", ".join(missing))
    if not layers.refined_in_control:
        for table in REFINED_TABLES + (OBSERVATION_PENDING,):
            layers.refined.create(table)
    if not layers.all_in_control:
        for table in DERIVED_TABLES:
            layers.derived.create(table)


def _ensure_refined_sql(control: PostgresBackend, conn: psycopg.Connection) -> None:
    """Refined tables in the control database, with the defaults, indexes and trigger the
    in-database refine relies on."""
    control.ensure_tables(conn, REFINED_TABLES + (OBSERVATION_PENDING,))
    for table in ("refined.patient", "refined.observation", "refined.observation_pending"):
        conn.execute(f"ALTER TABLE {table} ALTER COLUMN change_seq "
                     "SET DEFAULT nextval('meta.change_seq'), "
                     "ALTER COLUMN refined_at SET DEFAULT now()")
    for statement in _INDEXES:
        conn.execute(statement)
    conn.execute("CREATE OR REPLACE TRIGGER touch_old_patient AFTER UPDATE ON "
                 "refined.observation FOR EACH ROW WHEN (OLD.patient_key IS DISTINCT FROM "
                 "NEW.patient_key) EXECUTE FUNCTION meta.touch_old_patient()")


def _install_owner_trigger(conn: psycopg.Connection, table: Table) -> None:
    conn.execute(f"DROP TRIGGER IF EXISTS enforce_owner ON {table.qualified_name}")
    conn.execute(f"CREATE TRIGGER enforce_owner BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
                 f"ON {table.qualified_name} FOR EACH STATEMENT "
                 "EXECUTE FUNCTION meta.enforce_owner()")


def check_owner(conn: psycopg.Connection, table: Table, flow: str) -> None:
    """Refuse a flow that does not own the table (meta.table_owner in the control database)."""
    row = conn.execute("SELECT owner_flow FROM meta.table_owner WHERE table_name = %s",
                       (table.qualified_name,)).fetchone()
    owner = row[0] if row else table.owner
    if owner != flow:
        raise OwnershipError(f"{table.qualified_name} is owned by flow '{owner}'; "
                             f"flow '{flow}' may not write it")


def act_as(conn: psycopg.Connection, table: Table, flow: str) -> None:
    """Declare the writing flow for this transaction; the owner trigger checks it again."""
    check_owner(conn, table, flow)
    conn.execute("SELECT set_config('vitalflow.flow', %s, true)", (flow,))
