"""Creates the refined, derived and meta schemas from the table descriptions; table ownership."""

from __future__ import annotations

import hashlib
import inspect
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import psycopg

from storage_backends.postgres import PostgresBackend
from vitalflow.control import lock_pipeline
from vitalflow.privacy.identity import IDENTITY_DDL, ensure_identity_schema, grant_access
from vitalflow.tables import DERIVED_TABLES, OBSERVATION, REFINED_TABLES, Table

if TYPE_CHECKING:
    from vitalflow.storage import Layers

log = logging.getLogger("vitalflow.database")

OBSERVATION_PENDING = replace(
    OBSERVATION, name="observation_pending",
    description="Observations whose patient is not (yet) refined; promoted when it arrives.")

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


_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS meta.schema_version (
  target text PRIMARY KEY, fingerprint text NOT NULL, applied_at timestamptz NOT NULL)"""


def _fingerprint() -> str:
    """Changes whenever any DDL this module sends does: a new version of vitalflow with other
    tables, columns, indexes or functions applies its DDL once on the first run."""
    parts = [_META_DDL, IDENTITY_DDL, _VERSION_DDL, *_INDEXES, repr(REFINED_TABLES),
             repr(DERIVED_TABLES), repr(OBSERVATION_PENDING), inspect.getsource(_ensure_refined_sql),
             inspect.getsource(_install_owner_trigger), inspect.getsource(grant_access)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


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
    """Create or update every table of the profile and the control schema; safe on every run.

    The control database's DDL runs only when its schema version (a fingerprint of the DDL)
    is not the current one, and then under the pipeline lock: DDL on tables a concurrent
    refine writes would deadlock with it."""
    missing = _ensure_control_schema(layers)
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


def _ensure_control_schema(layers: Layers) -> list[str]:
    """Apply the control database's DDL unless current; the roles whose grants were skipped."""
    target = _schema_target(layers)
    with layers.control.connect() as conn:
        if _schema_current(conn, target, layers):
            return []
    with layers.control.connect() as conn:
        if not conn.execute("SELECT pg_try_advisory_xact_lock(hashtext('vitalflow.pipeline'))"
                            ).fetchone()[0]:
            log.warning("another vitalflow run holds the pipeline lock; waiting for it to "
                        "finish before setting up the schema")
            lock_pipeline(conn)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalflow.ddl'))")
        if _schema_current(conn, target, layers):  # set up by the run we waited for
            return []
        missing = _apply_control_ddl(conn, layers)
        conn.execute(_VERSION_DDL)
        if not missing:  # else every run tries the grants again, until the roles exist
            conn.execute("INSERT INTO meta.schema_version VALUES (%s, %s, now()) ON CONFLICT "
                         "(target) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, "
                         "applied_at = EXCLUDED.applied_at", (target, SCHEMA_FINGERPRINT))
    return missing


def _apply_control_ddl(conn: psycopg.Connection, layers: Layers) -> list[str]:
    conn.execute(_META_DDL)
    for table in DERIVED_TABLES:
        conn.execute("INSERT INTO meta.table_owner VALUES (%s, %s) ON CONFLICT (table_name) "
                     "DO UPDATE SET owner_flow = EXCLUDED.owner_flow",
                     (table.qualified_name, table.owner))
    ensure_identity_schema(conn)
    if layers.refined_in_control:
        _ensure_refined_sql(layers.control, conn)
    if layers.all_in_control:
        layers.control.ensure_tables(conn, DERIVED_TABLES)
        for table in DERIVED_TABLES:
            _install_owner_trigger(conn, table)
    return grant_access(conn)


def _schema_target(layers: Layers) -> str:
    """Which control-database tables the profile needs (profiles may share one database)."""
    return f"meta+refined={layers.refined_in_control}+derived={layers.all_in_control}"


def _control_tables(layers: Layers) -> list[str]:
    names = ["meta.run", "meta.table_owner", "identity.patient_identity"]
    if layers.refined_in_control:
        names += [t.qualified_name for t in REFINED_TABLES + (OBSERVATION_PENDING,)]
    if layers.all_in_control:
        names += [t.qualified_name for t in DERIVED_TABLES]
    return names


def _schema_current(conn: psycopg.Connection, target: str, layers: Layers) -> bool:
    """This version's DDL was applied, and no table has been dropped since (rebuild drops)."""
    if conn.execute("SELECT to_regclass('meta.schema_version')").fetchone()[0] is None:
        return False
    row = conn.execute(
        "SELECT fingerprint = %s AND (SELECT bool_and(to_regclass(t) IS NOT NULL) "
        "FROM unnest(%s::text[]) t) FROM meta.schema_version WHERE target = %s",
        (SCHEMA_FINGERPRINT, _control_tables(layers), target)).fetchone()
    return bool(row and row[0])


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
