"""The control database's ledger: refined batches, derive watermarks and the change sequence."""

from __future__ import annotations

import psycopg

from storage_backends.base import Backend, redact
from storage_backends.postgres import PostgresBackend

CONTROL = "control"


def target_of(backend: Backend, control: Backend) -> str:
    """How the ledger names where a layer lives: 'control', or the URL without secrets."""
    return CONTROL if backend.url == control.url else redact(backend.url)


def lock_pipeline(conn: psycopg.Connection) -> None:
    """One refine or derive at a time, until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalflow.pipeline'))")


def refined_batches(conn: psycopg.Connection, target: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT batch_id FROM meta.refined_batch WHERE target = %s", (target,))}


def mark_refined(conn: psycopg.Connection, target: str, run_id: str,
                 batches: list[tuple[str, int]]) -> None:
    conn.cursor().executemany(
        "INSERT INTO meta.refined_batch VALUES (%s, %s, %s, now(), %s)",
        [(target, batch_id, run_id, records) for batch_id, records in batches])


def next_change_seq(conn: psycopg.Connection) -> int:
    # nextval, not last_value: it is the only reading that is safe right after a restart.
    return conn.execute("SELECT nextval('meta.change_seq')").fetchone()[0]


def last_change_seq(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT last_value FROM meta.change_seq").fetchone()[0]


def watermark(conn: psycopg.Connection, target: str, table: str) -> int:
    row = conn.execute("SELECT change_seq FROM meta.derive_watermark "
                       "WHERE target = %s AND table_name = %s", (target, table)).fetchone()
    return row[0] if row else 0


def set_watermark(conn: psycopg.Connection, target: str, table: str, seq: int) -> None:
    conn.execute("INSERT INTO meta.derive_watermark VALUES (%s, %s, %s, now()) ON CONFLICT "
                 "(target, table_name) DO UPDATE SET change_seq = EXCLUDED.change_seq, "
                 "derived_at = EXCLUDED.derived_at", (target, table, seq))


def touched_patients(conn: psycopg.Connection, since: int) -> list[str]:
    """Patients that lost an observation to another patient since the watermark."""
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT patient_key FROM meta.patient_touch WHERE change_seq > %s", (since,))]


def record_touches(conn: psycopg.Connection, patient_keys: list[str], seq: int) -> None:
    conn.cursor().executemany("INSERT INTO meta.patient_touch VALUES (%s, %s)",
                              [(key, seq) for key in patient_keys])


def parked_records(conn: psycopg.Connection, target: str) -> dict[str, list[str]]:
    """batch id -> raw_record_ids parked for want of a terminology answer."""
    parked: dict[str, list[str]] = {}
    for batch_id, raw_record_id in conn.execute(
            "SELECT batch_id, raw_record_id FROM meta.terminology_pending WHERE target = %s "
            "ORDER BY 1, 2", (target,)):
        parked.setdefault(batch_id, []).append(raw_record_id)
    return parked


def replace_parked(conn: psycopg.Connection, target: str, retried: list[str],
                   parked: list[str]) -> None:
    """Forget the records this run retried and remember those it had to park."""
    conn.execute("DELETE FROM meta.terminology_pending WHERE target = %s "
                 "AND raw_record_id = ANY(%s)", (target, retried))
    conn.cursor().executemany(
        "INSERT INTO meta.terminology_pending VALUES (%s, %s, %s, now()) "
        "ON CONFLICT DO NOTHING", [(target, rid, rid.rsplit("-", 1)[0]) for rid in parked])


# Runs in meta.run that nobody is running any more: each run holds a claim while it lives.
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
