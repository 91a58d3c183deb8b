"""The query log (meta.query_log in the control database): who ran what, rows, time, outcome.
It stands in for the audit trail until that lands (its own issue)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import psycopg

log = logging.getLogger("vitalflow.sql")

QUERY_LOG_NAME = "meta.query_log"
_DDL = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.query_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL,
  user_name text NOT NULL,
  role text NOT NULL,
  engine text NOT NULL,
  profile text NOT NULL,
  statement text NOT NULL,
  rows bigint,
  duration_ms double precision NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('ok', 'refused', 'error', 'timeout')),
  message text);
COMMENT ON TABLE meta.query_log IS
  'Every query through vitalflow sql and the console (admins read it; analysts never)';
"""


@dataclass(frozen=True)
class QueryRecord:
    at: datetime
    user_name: str
    role: str
    engine: str
    profile: str
    statement: str
    rows: int | None
    duration_ms: float
    outcome: str
    message: str | None = None


class QueryLog:
    """Appends to meta.query_log over the control database URL (created on first use)."""

    def __init__(self, control_url: str) -> None:
        self.control_url = control_url
        self._ready = False

    def ensure(self) -> None:
        if self._ready:
            return
        with psycopg.connect(self.control_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext('vitalflow.query_log.ddl'))")
            try:
                conn.execute(_DDL)
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext('vitalflow.query_log.ddl'))")
        self._ready = True

    def write(self, record: QueryRecord) -> None:
        """Append one record; a log that cannot be written fails the query's caller loudly."""
        self.ensure()
        with psycopg.connect(self.control_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                "INSERT INTO meta.query_log (at, user_name, role, engine, profile, statement, "
                "rows, duration_ms, outcome, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s)",
                (record.at, record.user_name, record.role, record.engine, record.profile,
                 record.statement, record.rows, record.duration_ms, record.outcome,
                 record.message))

    def recent(self, user_name: str | None = None, limit: int = 50) -> list[dict]:
        """The latest records, newest first (the console's history; one user's when given)."""
        self.ensure()
        with psycopg.connect(self.control_url, autocommit=True, connect_timeout=10) as conn:
            cursor = conn.execute(
                "SELECT id, at, user_name, role, engine, statement, rows, duration_ms, outcome, "
                "message FROM meta.query_log WHERE %s::text IS NULL OR user_name = %s "
                "ORDER BY id DESC LIMIT %s", (user_name, user_name, limit))
            names = [c.name for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
