"""Merging against the identity schema: refresh after new records, manual link, unmerge, review.

Every function works inside the caller's transaction (refine's, or the CLI's) and takes the
identity advisory lock first, so a pipeline run and a reviewer never interleave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import pyarrow as pa

from vitalflow.merge import store
from vitalflow.merge.clustering import Key, cluster, decisions, never_overrides, unmerge_groups
from vitalflow.merge.matching import score
from vitalflow.merge.settings import MergeSettings
from vitalflow.merge.survivorship import golden_records


@dataclass
class MergeResult:
    records: int = 0
    persons: int = 0
    review_pairs: int = 0
    # Source records whose person changed (new records included): record -> (old, new person).
    # Observations of these records must move to the new person.
    moved: dict[Key, tuple[str | None, str]] = field(default_factory=dict)


def refresh(conn: psycopg.Connection, new_identities: pa.Table, settings: MergeSettings,
            now: datetime | None = None) -> MergeResult:
    """Store new or newer identity rows, score all records again and re-cluster."""
    store.lock(conn)
    store.ensure_schema(conn)
    now = now or datetime.now(UTC)
    if new_identities.num_rows:
        store.upsert_identities(conn, new_identities, now)
    identities = store.load(conn, store.SOURCE_RECORD)
    pairs = score(identities, settings)
    store.replace(conn, store.MATCH_PAIR, pairs)
    return _recluster(conn, identities, pairs, settings, now)


def link(conn: psycopg.Connection, a: Key, b: Key, settings: MergeSettings,
         now: datetime | None = None) -> MergeResult:
    """A reviewer's decision that two records are one person (rule 'manual')."""
    store.lock(conn)
    store.ensure_schema(conn)
    _require_known(conn, a, b)
    now = now or datetime.now(UTC)
    store.save_overrides(conn, decisions([(a, b)], "always", now))
    return _recluster_stored(conn, settings, now)


def unmerge(conn: psycopg.Connection, settings: MergeSettings, *, person_id: str | None = None,
            record: Key | None = None, now: datetime | None = None) -> MergeResult:
    """Reverse a wrong merge: take `record` out of its person, or undo the last merge into
    `person_id` (see clustering.unmerge_groups). Kept as `never` decisions, so later runs
    respect it; `always` decisions that made the merge are dropped."""
    if (person_id is None) == (record is None):
        raise ValueError("give either a person id or a source record")
    store.lock(conn)
    store.ensure_schema(conn)
    now = now or datetime.now(UTC)
    groups = unmerge_groups(store.load(conn, store.PERSON_LINK), person_id=person_id,
                            record=record)
    never = never_overrides(groups, now)
    for row in never.to_pylist():
        conn.execute(f"DELETE FROM {store.LINK_OVERRIDE.qualified_name} WHERE decision = "
                     "'always' AND source_system_a = %s AND source_id_a = %s "
                     "AND source_system_b = %s AND source_id_b = %s",
                     [row["source_system_a"], row["source_id_a"], row["source_system_b"],
                      row["source_id_b"]])
    store.save_overrides(conn, never)
    return _recluster_stored(conn, settings, now)


def _require_known(conn: psycopg.Connection, *records: Key) -> None:
    if not all(store.known(conn, record) for record in records):
        raise ValueError("unknown source record (check --source-system and the id)")


def _recluster_stored(conn: psycopg.Connection, settings: MergeSettings,
                      now: datetime | None) -> MergeResult:
    return _recluster(conn, store.load(conn, store.SOURCE_RECORD),
                      store.load(conn, store.MATCH_PAIR), settings, now)


def _recluster(conn: psycopg.Connection, identities: pa.Table, pairs: pa.Table,
               settings: MergeSettings, now: datetime | None) -> MergeResult:
    previous = store.load(conn, store.PERSON_LINK)
    result = cluster(identities, pairs, match_probability=settings.match_probability,
                     now=now or datetime.now(UTC), overrides=store.load(conn, store.LINK_OVERRIDE),
                     previous=previous)
    store.replace(conn, store.PERSON_LINK, result.links)
    store.replace(conn, store.PERSON, golden_records(identities, result.links))
    store.replace(conn, store.REVIEW_PAIR, result.review)
    before = {(r["source_system"], r["source_id"]): r["person_id"]
              for r in previous.select(["source_system", "source_id", "person_id"]).to_pylist()}
    moved = {}
    for row in result.links.select(["source_system", "source_id", "person_id"]).to_pylist():
        key = (row["source_system"], row["source_id"])
        if before.get(key) != row["person_id"]:
            moved[key] = (before.get(key), row["person_id"])
    persons = len(set(result.links.column("person_id").to_pylist()))
    return MergeResult(identities.num_rows, persons, result.review.num_rows, moved)
