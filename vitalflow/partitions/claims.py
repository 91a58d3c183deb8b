"""The partitions of a run in the control database, and the claims workers hold on them.

A worker claims a partition with an advisory lock held by its own database session: when the
worker dies, the server ends the session and the claim with it, so the partition (still not
'done') is taken again by the next worker that looks. A partition is marked done in the
transaction that writes its rows, so a redo never doubles anything.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass

import psycopg

from storage_backends.sql import comment_statements, create_table
from vitalflow.tables import Column, Pii, Table

C = Column
# Described as data, like every table (the DDL and its comments come from it).
PARTITION_CLAIM = Table("meta", "partition_claim", "Partitions of partitioned runs' refine and "
                        "derive: who holds each and whether it is done.", "partitions", (
    C("run_id", "text", "the run", nullable=False, pii=Pii.NONE, references="meta.run.run_id"),
    C("stage", "text", "refine or derive", nullable=False, pii=Pii.NONE),
    C("part", "int", "the partition, 0 .. parts - 1", nullable=False, unit="{partition}",
      pii=Pii.NONE),
    C("parts", "int", "how many partitions the stage has", nullable=False, unit="{partition}",
      pii=Pii.NONE),
    C("state", "text", "pending, running (claimed) or done", nullable=False, pii=Pii.NONE),
    C("worker", "text", "host:pid of the worker that claimed it last", pii=Pii.NONE),
    C("attempts", "int", "claims so far; more than one: a worker died and it was redone",
      nullable=False, unit="{claim}", pii=Pii.NONE),
    C("plan", "json", "what the planner fixed: refine's batches, derive's change_seq",
      nullable=False, pii=Pii.NONE),
    C("result", "json", "the partition's counts, written with its rows", pii=Pii.NONE),
    C("claimed_at", "timestamp", "when it was claimed last", pii=Pii.NONE),
    C("finished_at", "timestamp", "when it was done", pii=Pii.NONE),
), ("run_id", "stage", "part"))

_LOCK = ("SELECT pg_try_advisory_lock(hashtext('vitalflow.partition'), "
         "hashtext(%s || '/' || %s || '/' || %s))")
STAGES = ("refine", "derive")


def ensure_schema(conn: psycopg.Connection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS meta")
    conn.execute(create_table(PARTITION_CLAIM))
    for statement in comment_statements(PARTITION_CLAIM):
        conn.execute(statement)


def plan(conn: psycopg.Connection, run_id: str, stage: str, parts: int, details: dict) -> None:
    """One pending row per partition (planning the same run again changes nothing)."""
    ensure_schema(conn)
    conn.cursor().executemany(
        "INSERT INTO meta.partition_claim (run_id, stage, part, parts, state, attempts, plan) "
        "VALUES (%s, %s, %s, %s, 'pending', 0, %s) ON CONFLICT DO NOTHING",
        [(run_id, stage, part, parts, json.dumps(details)) for part in range(parts)])


@dataclass
class Claim:
    """One partition held by this process until close() (or its death)."""

    conn: psycopg.Connection
    run_id: str
    stage: str
    part: int
    parts: int
    plan: dict

    def finish(self, conn: psycopg.Connection, result: dict) -> None:
        """Mark the partition done, on the connection of the transaction writing its rows."""
        conn.execute("UPDATE meta.partition_claim SET state = 'done', result = %s, "
                     "finished_at = clock_timestamp() "
                     "WHERE run_id = %s AND stage = %s AND part = %s",
                     (json.dumps(result), self.run_id, self.stage, self.part))

    def close(self) -> None:
        self.conn.close()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_next(url: str, run_id: str, stage: str, part: int | None = None) -> Claim | None:
    """Claim a partition not done that nobody holds (part: only that one); None if none."""
    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    try:
        rows = conn.execute("SELECT part FROM meta.partition_claim WHERE run_id = %s AND "
                            "stage = %s AND state <> 'done' AND (%s::int IS NULL OR part = %s) "
                            "ORDER BY part", (run_id, stage, part, part)).fetchall()
        for (candidate,) in rows:
            if not conn.execute(_LOCK, (run_id, stage, str(candidate))).fetchone()[0]:
                continue  # a live worker holds it
            row = conn.execute(
                "UPDATE meta.partition_claim SET state = 'running', worker = %s, "
                "attempts = attempts + 1, claimed_at = now() WHERE run_id = %s AND stage = %s "
                "AND part = %s AND state <> 'done' RETURNING parts, plan",
                (worker_name(), run_id, stage, candidate)).fetchone()
            if row:  # else it was finished between the look and the lock
                return Claim(conn, run_id, stage, candidate, row[0], row[1])
            conn.execute("SELECT pg_advisory_unlock(hashtext('vitalflow.partition'), "
                         "hashtext(%s || '/' || %s || '/' || %s))", (run_id, stage, str(candidate)))
    except BaseException:
        conn.close()
        raise
    conn.close()
    return None


def states(conn: psycopg.Connection, run_id: str, stage: str) -> list[dict]:
    """Every partition of the stage: part, state, worker, attempts, result."""
    cursor = conn.execute("SELECT part, state, worker, attempts, result FROM "
                          "meta.partition_claim WHERE run_id = %s AND stage = %s ORDER BY part",
                          (run_id, stage))
    names = [c.name for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
