"""Creates the refined, derived and meta schemas from the table descriptions; table ownership."""

from __future__ import annotations

import hashlib
import inspect
import logging

import psycopg

from storage_backends.base import Backend
from storage_backends.postgres import PostgresBackend
from storage_backends.sql import comment_statements
from vitalflow.control import lock_pipeline, target_of
from vitalflow.privacy.identity import IDENTITY_DDL, ensure_identity_schema, grant_access
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


_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS meta.schema_version (
  target text PRIMARY KEY, fingerprint text NOT NULL, applied_at timestamptz NOT NULL)"""


def ensure_layers(control: PostgresBackend, refined: Backend, derived: Backend) -> None:
    """Create or update every table of the profile and the control schema; safe on every run.

    The DDL runs only when the schema version (a fingerprint of the DDL and the table
    descriptions) is not the current one or a table is missing, and then under the pipeline
    lock: DDL on tables a concurrent refine writes would deadlock with it."""
    target = f"{target_of(refined, control)} {target_of(derived, control)}"
    with control.connect() as conn:
        if _schema_current(conn, target, refined, derived):
            return
    with control.connect() as conn:
        if not conn.execute("SELECT pg_try_advisory_xact_lock(hashtext('vitalflow.pipeline'))"
                            ).fetchone()[0]:
            log.warning("another vitalflow run holds the pipeline lock; waiting for it to "
                        "finish before setting up the schema")
            lock_pipeline(conn)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalflow.ddl'))")
        if _schema_current(conn, target, refined, derived):  # set up by the run we waited for
            return
        for table in REFINED_TABLES:
            refined.create(table)
        for table in DERIVED_TABLES:
            derived.create(table)
        missing = _apply_control_ddl(conn, derived is control)
        conn.execute(_VERSION_DDL)
        if not missing:  # else every run tries the grants again, until the roles exist
            conn.execute("INSERT INTO meta.schema_version VALUES (%s, %s, now()) ON CONFLICT "
                         "(target) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, "
                         "applied_at = EXCLUDED.applied_at", (target, SCHEMA_FINGERPRINT))
    if missing:
        log.warning("roles %s do not exist: analyst and re-identification grants skipped "
                    "(the embedded server creates them; elsewhere see docs/privacy.md)",
                    ", ".join(missing))


def _apply_control_ddl(conn: psycopg.Connection, derived_in_control: bool) -> list[str]:
    """The control database's own schema; returns the roles whose grants were skipped."""
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
        if derived_in_control:
            # The database itself refuses a writer that is not the owner flow (act_as).
            _install_owner_trigger(conn, table)
    ensure_identity_schema(conn)
    return grant_access(conn)


def _schema_current(conn: psycopg.Connection, target: str, refined: Backend,
                    derived: Backend) -> bool:
    """This version's DDL was applied, and no table has been dropped since (rebuild drops)."""
    if conn.execute("SELECT to_regclass('meta.schema_version')").fetchone()[0] is None:
        return False
    row = conn.execute("SELECT fingerprint FROM meta.schema_version WHERE target = %s",
                       (target,)).fetchone()
    return (bool(row) and row[0] == SCHEMA_FINGERPRINT
            and all(refined.exists(t) for t in REFINED_TABLES)
            and all(derived.exists(t) for t in DERIVED_TABLES))


def _fingerprint() -> str:
    """Changes whenever any DDL sent here does: a new version of vitalflow with other tables,
    columns, indexes, comments or functions applies its DDL once, on its first run."""
    parts = [_META_DDL, IDENTITY_DDL, _VERSION_DDL, TERMINOLOGY_CACHE_DDL,
             repr(REFINED_TABLES), repr(DERIVED_TABLES), repr(META_TABLES),
             inspect.getsource(_apply_control_ddl), inspect.getsource(_install_owner_trigger),
             inspect.getsource(grant_access), inspect.getsource(PostgresBackend.ensure_tables)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _install_owner_trigger(conn: psycopg.Connection, table: Table) -> None:
    conn.execute(f"DROP TRIGGER IF EXISTS enforce_owner ON {table.qualified_name}")
    conn.execute(f"CREATE TRIGGER enforce_owner BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
                 f"ON {table.qualified_name} FOR EACH STATEMENT "
                 "EXECUTE FUNCTION meta.enforce_owner()")


SCHEMA_FINGERPRINT = _fingerprint()


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
