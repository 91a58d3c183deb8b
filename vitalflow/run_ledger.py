"""Runs in meta.run that nobody is running any more: each run holds a claim while it lives."""

from __future__ import annotations

import psycopg

from storage_backends.postgres import PostgresBackend

_CLAIM = "SELECT pg_try_advisory_lock(hashtext('vitalflow.run'), hashtext(%s))"
_RELEASE = "SELECT pg_advisory_unlock(hashtext('vitalflow.run'), hashtext(%s))"


def claim_run(control: PostgresBackend, run_id: str) -> psycopg.Connection:
    """A session holding this run's claim until closed (or until the process dies: the server
    then ends the session and the claim with it). Runs left 'running' by killed processes are
    marked 'abandoned' first."""
    conn = psycopg.connect(control.url, autocommit=True, connect_timeout=10)
    try:
        mark_abandoned(conn)
        conn.execute(_CLAIM, (run_id,))
    except BaseException:
        conn.close()
        raise
    return conn


def mark_abandoned(conn: psycopg.Connection) -> list[str]:
    """'running' runs whose claim nobody holds: their process is gone. Returns their ids."""
    abandoned = []
    for (run_id,) in conn.execute("SELECT run_id FROM meta.run WHERE status = 'running'"
                                  ).fetchall():
        if conn.execute(_CLAIM, (run_id,)).fetchone()[0]:
            conn.execute("UPDATE meta.run SET status = 'abandoned', finished_at = now() "
                         "WHERE run_id = %s AND status = 'running'", (run_id,))
            conn.execute(_RELEASE, (run_id,))
            abandoned.append(run_id)
    return abandoned
