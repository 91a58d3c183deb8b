"""The audit schema: one append-only, hash-chained event table, its append function and grants."""

from __future__ import annotations

import psycopg
from psycopg import sql

from vitalflow.privacy.identity import ANALYST, AUDITOR

GENESIS = "0" * 64  # the previous hash of the first event
# hash = sha256(seq | prev_hash | body): the body is stored as hashed, so verifying needs no
# canonical form; seq and prev_hash inside the digest make a moved or re-linked event show.
HASH_SQL = ("encode(sha256(convert_to({seq}::text || '|' || {prev} || '|' || {body}, 'UTF8')), "
            "'hex')")

_DDL = """
CREATE SCHEMA IF NOT EXISTS audit;
REVOKE ALL ON SCHEMA audit FROM PUBLIC;
CREATE TABLE IF NOT EXISTS audit.event (
  seq bigint PRIMARY KEY CHECK (seq > 0),
  prev_hash text NOT NULL,
  hash text NOT NULL,
  body text NOT NULL,
  -- Read from the hashed body, so they cannot disagree with it; indexed for `audit show`.
  at text GENERATED ALWAYS AS (body::jsonb ->> 'at') STORED,
  action text GENERATED ALWAYS AS (body::jsonb ->> 'action') STORED,
  outcome text GENERATED ALWAYS AS (body::jsonb ->> 'outcome') STORED,
  run_id text GENERATED ALWAYS AS (body::jsonb ->> 'run_id') STORED);
COMMENT ON TABLE audit.event IS
  'Audit trail: append-only (trigger), hash-chained (docs/audit.md); write with audit.append';
CREATE INDEX IF NOT EXISTS event_at ON audit.event (at);
CREATE INDEX IF NOT EXISTS event_action ON audit.event (action);
CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit.event is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.event
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
-- The one writer: takes the chain's lock, so concurrent writers keep one chain; the server adds
-- the time (UTC) and the connected role, which a client cannot forge.
CREATE OR REPLACE FUNCTION audit.append(p_event jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_seq bigint;
  v_prev text;
  v_body text;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('vitalflow.audit.append'));
  SELECT seq, hash INTO v_seq, v_prev FROM audit.event ORDER BY seq DESC LIMIT 1;
  v_seq := coalesce(v_seq, 0) + 1;
  v_prev := coalesce(v_prev, '{genesis}');
  v_body := (p_event || jsonb_build_object(
    'at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'db_role', session_user::text))::text;
  INSERT INTO audit.event (seq, prev_hash, hash, body)
  VALUES (v_seq, v_prev, {hash}, v_body);
  RETURN v_seq;
END $$;
REVOKE ALL ON FUNCTION audit.append(jsonb) FROM PUBLIC;
""".replace("{genesis}", GENESIS).replace(
    "{hash}", HASH_SQL.format(seq="v_seq", prev="v_prev", body="v_body"))

# The owner (the pipeline's role) keeps INSERT and SELECT only; even it, or a superuser, meets
# the trigger. Re-granting itself or dropping the trigger is possible for an owner: the hash
# chain and the anchors outside the database are what make that visible (docs/audit.md).
_OWNER_LIMITS = "REVOKE UPDATE, DELETE, TRUNCATE ON audit.event FROM CURRENT_USER"


def ensure_audit_schema(conn: psycopg.Connection) -> None:
    """Create or update the audit schema and its grants (as the owner of the control schemas)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalflow.audit.ddl'))")
    conn.execute(_DDL)
    conn.execute(_OWNER_LIMITS)
    existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                           ([ANALYST, AUDITOR],))}
    if ANALYST in existing:
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA audit FROM {}").format(
            sql.Identifier(ANALYST)))
    if AUDITOR in existing:
        auditor = sql.Identifier(AUDITOR)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA audit TO {}").format(auditor))
        conn.execute(sql.SQL("GRANT SELECT ON audit.event TO {}").format(auditor))
