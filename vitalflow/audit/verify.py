"""Verifying the audit trail: every hash recomputed in the database, chain and anchors checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg

from vitalflow.audit.anchors import chain_name, read_anchors
from vitalflow.audit.schema import GENESIS, HASH_SQL

if TYPE_CHECKING:
    from vitalflow.config import Settings

# One pass in the server: sha256 per event, each joined to its predecessor by key (a merge of
# two scans in key order: twice as fast as a window here); only the count, the first broken
# sequence number and the head travel back.
_CHAIN_SQL = f"""
SELECT count(*),
       min(e.seq) FILTER (WHERE NOT (
         {HASH_SQL.format(seq="e.seq", prev="e.prev_hash", body="e.body")} = e.hash
         AND e.prev_hash = coalesce(p.hash, '{GENESIS}')
         AND (p.seq IS NOT NULL OR e.seq = 1))),
       max(e.seq)
FROM audit.event e LEFT JOIN audit.event p ON p.seq = e.seq - 1"""

_DIAGNOSE_SQL = f"""
SELECT e.seq, {HASH_SQL.format(seq="e.seq", prev="e.prev_hash", body="e.body")} = e.hash,
       p.seq, e.prev_hash = coalesce(p.hash, '{GENESIS}')
FROM audit.event e
LEFT JOIN LATERAL (SELECT seq, hash FROM audit.event WHERE seq < e.seq
                   ORDER BY seq DESC LIMIT 1) p ON true
WHERE e.seq = %s"""


@dataclass
class Verdict:
    events: int = 0
    head: int | None = None
    broken_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    anchors: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(conn: psycopg.Connection, settings: Settings) -> Verdict:
    """Check the chain (altered, deleted, inserted or reordered events) and the anchors outside
    the database (a truncated tail, a chain rebuilt from scratch). Reads one snapshot."""
    verdict = Verdict()
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        verdict.events, broken, verdict.head = conn.execute(_CHAIN_SQL).fetchone()
        if broken is not None:
            verdict.broken_seq = broken
            verdict.problems.append(_diagnose(conn, broken))
        _check_anchors(conn, settings, verdict)
    return verdict


def _diagnose(conn: psycopg.Connection, seq: int) -> str:
    _, content_ok, previous, linked = conn.execute(_DIAGNOSE_SQL, (seq,)).fetchone()
    if not content_ok:
        return (f"event {seq}: its content or position does not match its hash (altered, or "
                "moved from another place)")
    expected = 1 if previous is None else previous + 1
    if seq != expected:
        return (f"event {seq}: follows event {previous or 'none'} (events missing or "
                "renumbered before it)")
    if not linked:
        return (f"event {seq}: does not link to the event before it (an event before it was "
                "deleted, inserted or reordered)")
    return f"event {seq}: broken"


def _check_anchors(conn: psycopg.Connection, settings: Settings, verdict: Verdict) -> None:
    anchors, problems = read_anchors(settings, chain_name(conn))
    verdict.problems += problems
    verdict.anchors = len(anchors)
    if not anchors:
        verdict.warnings.append("no anchors for this database: a truncated tail or a chain "
                                "rebuilt from scratch would not be detected")
        return
    stored = dict(conn.execute("SELECT seq, hash FROM audit.event WHERE seq = ANY(%s)",
                               ([a.seq for a in anchors],)).fetchall())
    for anchor in sorted(anchors, key=lambda a: a.seq):
        if anchor.seq not in stored:
            verdict.problems.append(
                f"event {anchor.seq}: anchored at {anchor.at} but no longer in the database "
                f"(the chain ends at {verdict.head or 0}: its tail was truncated)")
            verdict.broken_seq = min(verdict.broken_seq or anchor.seq, anchor.seq)
            return
        if stored[anchor.seq] != anchor.hash:
            verdict.problems.append(
                f"event {anchor.seq}: its hash differs from the one anchored at {anchor.at} "
                "(the chain up to it was rewritten)")
            verdict.broken_seq = min(verdict.broken_seq or anchor.seq, anchor.seq)
            return
