"""The restricted identity schema: pseudonym mapping, key ids, audited re-identification, roles."""

from __future__ import annotations

import fcntl
import json
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import psycopg
import pyarrow as pa
from psycopg import errors, sql

from vitalflow.audit.trail import append, make_event, where
from vitalflow.privacy.keys import PseudonymKey
from vitalflow.tables import IDENTITY_TABLES

ANALYST = "vitalflow_analyst"
REIDENTIFIER = "vitalflow_reidentifier"
AUDITOR = "vitalflow_auditor"  # reads the audit schema (vitalflow.audit), nothing else
ROLES = (ANALYST, REIDENTIFIER, AUDITOR)
ANALYST_SCHEMAS = ("refined", "derived")
# Per readable schema; the default privileges cover tables its owner creates later.
_ANALYST_GRANTS = ("GRANT USAGE ON SCHEMA {s} TO {r}",
                   "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}",
                   "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}")

IDENTITY_DDL = """
CREATE SCHEMA IF NOT EXISTS identity;
REVOKE ALL ON SCHEMA identity FROM PUBLIC;
CREATE TABLE IF NOT EXISTS identity.pseudonym_key (
  key_id text PRIMARY KEY,
  activated_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz);
CREATE UNIQUE INDEX IF NOT EXISTS pseudonym_key_one_active
  ON identity.pseudonym_key ((true)) WHERE retired_at IS NULL;
CREATE TABLE IF NOT EXISTS identity.patient_identity (
  pseudonym text PRIMARY KEY,
  source_system text NOT NULL,
  source_id text NOT NULL,
  key_id text NOT NULL REFERENCES identity.pseudonym_key,
  first_seen timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source_system, source_id));
CREATE TABLE IF NOT EXISTS identity.reidentification_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  db_user text NOT NULL DEFAULT session_user,
  requested_by text NOT NULL,
  pseudonym text NOT NULL,
  reason text NOT NULL,
  found boolean NOT NULL);
CREATE TABLE IF NOT EXISTS identity.rekey_log (
  at timestamptz NOT NULL DEFAULT now(),
  db_user text NOT NULL DEFAULT session_user,
  old_key_id text NOT NULL,
  new_key_id text NOT NULL,
  identities bigint NOT NULL);
CREATE OR REPLACE FUNCTION identity.reidentify(p_pseudonym text, p_reason text,
                                               p_requested_by text)
RETURNS TABLE (source_system text, source_id text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF p_reason IS NULL OR length(btrim(p_reason)) < 10 THEN
    RAISE EXCEPTION 're-identification needs a reason of at least 10 characters'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO identity.reidentification_log (requested_by, pseudonym, reason, found)
  VALUES (coalesce(nullif(btrim(p_requested_by), ''), session_user), p_pseudonym,
          btrim(p_reason),
          EXISTS (SELECT 1 FROM identity.patient_identity i WHERE i.pseudonym = p_pseudonym));
  -- In the same transaction: no re-identification without its audit event (vitalflow.audit).
  PERFORM audit.append(coalesce(nullif(current_setting('vitalflow.audit_where', true), '')::jsonb,
                               '{}') || jsonb_build_object(
    'action', 'identity.reidentify', 'outcome', 'succeeded',
    'target', 'identity.patient_identity', 'app_user', p_requested_by,
    'params', jsonb_build_object('pseudonym', p_pseudonym, 'reason', btrim(p_reason)),
    'counts', jsonb_build_object('found', (SELECT count(*) FROM identity.patient_identity i
                                           WHERE i.pseudonym = p_pseudonym))));
  RETURN QUERY SELECT i.source_system, i.source_id FROM identity.patient_identity i
                WHERE i.pseudonym = p_pseudonym;
END $$;
REVOKE ALL ON FUNCTION identity.reidentify(text, text, text) FROM PUBLIC;
"""


class KeyMismatch(RuntimeError):
    """The configured key is not the one the database's pseudonyms were made with."""


class ReidentificationDenied(PermissionError):
    """The connected role may not re-identify."""


def ensure_identity_schema(conn: psycopg.Connection) -> None:
    """Create the identity schema and the audit schema it writes to (run as the owner of the
    refined and derived schemas)."""
    from vitalflow.audit.schema import ensure_audit_schema  # imports this module's roles

    conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalflow.identity.ddl'))")
    ensure_audit_schema(conn)  # identity.reidentify writes its event there
    conn.execute(IDENTITY_DDL)
    for table in IDENTITY_TABLES:  # descriptions live with every other table's
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(
            sql.Identifier(table.layer, table.name), sql.Literal(table.comment)))


def ensure_roles(conn: psycopg.Connection, passwords: Mapping[str, str] | None = None,
                 roles: Iterable[str] = ROLES) -> None:
    """Create the cluster-wide roles if missing: NOLOGIN groups to grant to people, or LOGIN
    roles for those given a password. Safe to run concurrently from several sessions.

    Passwords go to the server as SCRAM verifiers only, and CREATE ROLE is sent only for roles
    not there yet: a failing statement is written to the server log, secret and all."""
    from vitalflow.pg_passwords import scram_verifier

    passwords = passwords or {}
    for role in roles:
        login = (sql.SQL("LOGIN PASSWORD {}").format(sql.Literal(scram_verifier(passwords[role])))
                 if role in passwords else sql.SQL("NOLOGIN"))
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(role), login))
                continue
            # Two sessions creating the same role: the loser sees either error.
            except (errors.DuplicateObject, errors.UniqueViolation):
                pass
        if role in passwords:
            conn.execute(sql.SQL("ALTER ROLE {} {}").format(sql.Identifier(role), login))


def grant_access(conn: psycopg.Connection, readable: Iterable[str] = ANALYST_SCHEMAS) -> list[str]:
    """Analysts read the given schemas (now and tables created later) and nothing in identity;
    the re-identifier may only call identity.reidentify. Run as the schemas' owner. Returns the
    roles that do not exist (yet), whose grants were skipped: create them with ensure_roles."""
    conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA identity FROM PUBLIC")
    existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                           (list(ROLES),))}
    if ANALYST in existing:
        for schema in readable:
            if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                (schema,)).fetchone():
                continue
            for statement in _ANALYST_GRANTS:
                conn.execute(sql.SQL(statement).format(s=sql.Identifier(schema),
                                                       r=sql.Identifier(ANALYST)))
    if REIDENTIFIER in existing:
        reidentifier = sql.Identifier(REIDENTIFIER)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA identity TO {}").format(reidentifier))
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION identity.reidentify(text, text, text) "
                             "TO {}").format(reidentifier))
    return [role for role in ROLES if role not in existing]


def ensure_embedded_roles(admin_url: str, passfile: Path) -> None:
    """For the embedded server: LOGIN roles whose generated passwords live in its libpq
    passfile (mode 600), so `vitalflow reidentify` can connect as the re-identifier."""
    with passfile.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # one writer per passfile; roles follow the file
        handle.seek(0)
        known = {}
        for line in handle.read().splitlines():
            *_, role, password = line.split(":", 4)
            known[role] = password
        missing = {role: secrets.token_urlsafe(24) for role in ROLES if role not in known}
        for role, password in missing.items():
            handle.write(f"127.0.0.1:*:*:{role}:{password}\n")
        handle.flush()
        passwords = {role: known.get(role) or missing[role] for role in ROLES}
        with psycopg.connect(admin_url, autocommit=True) as conn:
            ensure_roles(conn, passwords)
            # Reads of identity audited by the server too: every statement of the re-identifier
            # goes to the server log (a superuser-only setting, hence here; docs/audit.md).
            conn.execute(sql.SQL("ALTER ROLE {} SET log_statement = 'all'").format(
                sql.Identifier(REIDENTIFIER)))


def register_key(conn: psycopg.Connection, key: PseudonymKey) -> None:
    """Record the key id on first use; refuse a key other than the database's active one."""
    conn.execute("LOCK TABLE identity.pseudonym_key IN SHARE ROW EXCLUSIVE MODE")
    row = conn.execute("SELECT key_id FROM identity.pseudonym_key "
                       "WHERE retired_at IS NULL").fetchone()
    if row is None:
        conn.execute("INSERT INTO identity.pseudonym_key (key_id) VALUES (%s)", (key.key_id,))
        append(conn, make_event("privacy.key_registered", target="identity.pseudonym_key",
                                params={"key_id": key.key_id, "origin": key.origin}))
    elif row[0] != key.key_id:
        raise KeyMismatch(f"the configured pseudonymisation key (key id {key.key_id}) is not the "
                          f"database's active key (key id {row[0]}): configure that key, or "
                          "move the database to the new key with `vitalflow rekey`")


def record_identities(conn: psycopg.Connection, identities: pa.Table,
                      key: PseudonymKey) -> None:
    """Add pseudonym -> source identity rows (from Pseudonymiser) that are not there yet."""
    if identities.num_rows == 0:
        return
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS pseudonym_stage "
                 "(pseudonym text, source_system text, source_id text) ON COMMIT DELETE ROWS")
    with conn.cursor().copy("COPY pseudonym_stage FROM STDIN") as copy:
        for row in zip(*(identities.column(n).to_pylist() for n in
                         ("pseudonym", "source_system", "source_id")), strict=True):
            copy.write_row(row)
    conn.execute("INSERT INTO identity.patient_identity (pseudonym, source_system, source_id, "
                 "key_id) SELECT pseudonym, source_system, source_id, %s FROM pseudonym_stage "
                 "ON CONFLICT DO NOTHING", (key.key_id,))
    conn.execute("TRUNCATE pseudonym_stage")


def reidentify(conn: psycopg.Connection, pseudonym: str, reason: str,
               requested_by: str) -> list[tuple[str, str]]:
    """The (source_system, source_id) behind a pseudonym, logged in identity.reidentification_log.
    Works only for roles granted identity.reidentify (vitalflow_reidentifier)."""
    try:
        with conn.transaction():
            # Host, process and OS user for the audit event the function writes.
            conn.execute("SELECT set_config('vitalflow.audit_where', %s, true)",
                         (json.dumps(where()),))
            return conn.execute("SELECT source_system, source_id FROM "
                                "identity.reidentify(%s, %s, %s)",
                                (pseudonym, reason, requested_by)).fetchall()
    except errors.InsufficientPrivilege:
        raise ReidentificationDenied(
            f"role {conn.info.user} may not re-identify: connect as a member of "
            f"{REIDENTIFIER}") from None
    except errors.InvalidParameterValue as exc:
        raise ValueError(exc.diag.message_primary) from None
