"""Creates the refined, derived and meta schemas from the table descriptions; table ownership."""

from __future__ import annotations

import logging

import psycopg

from storage_backends.base import Backend
from storage_backends.postgres import PostgresBackend
from storage_backends.sql import comment_statements
from vitalflow.privacy.identity import ensure_identity_schema, grant_access
from vitalflow.tables import DERIVED_TABLES, META_TABLES, REFINED_TABLES, Table
from vitalflow.terminology.cache import DDL as TERMINOLOGY_CACHE_DDL

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

class OwnershipError(PermissionError):
    """A flow tried to write a derived table that another flow owns."""


def ensure_layers(control: PostgresBackend, refined: Backend, derived: Backend) -> None:
    """Create or update every table of the profile and the control schema; safe on every run."""
    for table in REFINED_TABLES:
        refined.create(table)
    for table in DERIVED_TABLES:
        derived.create(table)
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
            if derived is control:
                # The database itself refuses a writer that is not the owner flow (act_as).
                _install_owner_trigger(conn, table)
        ensure_identity_schema(conn)
        missing = grant_access(conn)
    if missing:
        log.warning("roles %s do not exist: analyst and re-identification grants skipped "
                    "(the embedded server creates them; elsewhere see docs/privacy.md)",
                    ", ".join(missing))


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
