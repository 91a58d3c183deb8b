"""Refine: raw batches -> refined.patient / refined.observation / refined.quarantine, atomically."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psycopg

from storage_backends.postgres import PostgresStore
from vitalflow.config import Settings
from vitalflow.progress import Reporter, SilentReporter
from vitalflow.raw import RawStore
from vitalflow.reasons import Quarantine
from vitalflow.standardise import (OBSERVATION_STAGE, PATIENT_STAGE, QUARANTINE_STAGE,
                                   Standardiser)

# Newest version wins: versionId, then lastUpdated, then the content hash as a stable tie-break,
# so the outcome does not depend on the order records arrive in.
_RANK = ("coalesce({t}version, -1), coalesce({t}last_updated, '-infinity'::timestamptz), "
         "{t}content_hash")
_NEWEST_FIRST = ("coalesce(version, -1) DESC, coalesce(last_updated, '-infinity'::timestamptz) "
                 "DESC, content_hash DESC")


@dataclass
class ResourceCounts:
    read: int = 0
    refined: int = 0
    quarantined: int = 0
    filtered: int = 0
    duplicates: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class RefineResult:
    batches: list[str] = field(default_factory=list)
    counts: dict[str, ResourceCounts] = field(default_factory=dict)
    quarantine_reasons: Counter = field(default_factory=Counter)
    filter_reasons: Counter = field(default_factory=Counter)
    promoted_orphans: int = 0

    def resource(self, resource_type: str) -> ResourceCounts:
        return self.counts.setdefault(resource_type, ResourceCounts())


def refine(store: PostgresStore, raw: RawStore, settings: Settings, run_id: str,
           reporter: Reporter | None = None) -> RefineResult:
    """Refine every raw batch not refined before, in one transaction (all or nothing)."""
    reporter = reporter or SilentReporter()
    standardiser = Standardiser(settings.refine.observation_codes,
                                settings.refine.excluded_statuses, settings.ingest.max_record_bytes)
    result = RefineResult()
    with store.connect() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalflow.pipeline'))")
        done = {r[0] for r in conn.execute("SELECT batch_id FROM meta.refined_batch")}
        pending = [b for b in raw.manifest() if b.batch_id not in done]
        result.batches = [b.batch_id for b in pending]
        _create_stages(conn)
        with reporter.step("refine", sum(b.records for b in pending)) as bar:
            for batch in pending:
                for records in raw.read(batch.batch_id, settings.ingest.batch_rows):
                    out = standardiser.run(records, batch.resource_type_hint)
                    store.copy_arrow(conn, "stage_patient", out.patients)
                    store.copy_arrow(conn, "stage_observation", out.observations)
                    store.copy_arrow(conn, "stage_quarantine", out.quarantine)
                    _tally(result, out)
                    bar.advance(records.num_rows)
        with reporter.step("merge into refined", None):
            _merge(conn, result)
        conn.cursor().executemany(
            "INSERT INTO meta.refined_batch VALUES (%s, %s, now(), %s)",
            [(b.batch_id, run_id, b.records) for b in pending])
    return result


def _create_stages(conn: psycopg.Connection) -> None:
    for name, source, columns in (("stage_patient", "refined.patient", PATIENT_STAGE),
                                  ("stage_observation", "refined.observation", OBSERVATION_STAGE),
                                  ("stage_quarantine", "refined.quarantine", QUARANTINE_STAGE)):
        names = ", ".join(c.name for c in columns)
        conn.execute(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS "
                     f"SELECT {names} FROM {source} WITH NO DATA")


def _tally(result: RefineResult, out) -> None:
    for resource_type, n in out.read.items():
        result.resource(resource_type).read += n
    for (resource_type, reason), n in out.filtered.items():
        result.resource(resource_type).filtered += n
        result.filter_reasons[reason] += n
    for resource_type, reason in zip(out.quarantine.column("resource_type").to_pylist(),
                                     out.quarantine.column("reason").to_pylist(), strict=True):
        result.resource(resource_type).quarantined += 1
        result.quarantine_reasons[reason] += 1


def _upsert(conn: psycopg.Connection, target: str, source: str, columns: list[str],
            key: str) -> int:
    """Insert rows of source, replacing existing rows only with a strictly newer version."""
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    if "patient_key" in columns and key != "patient_key":
        # A newer version may name another patient: the old one's derived rows must change too.
        conn.execute(f"""
            INSERT INTO meta.patient_touch (patient_key, change_seq)
            SELECT t.patient_key, nextval('meta.change_seq') FROM {target} t
              JOIN {source} s USING ({key})
             WHERE t.patient_key <> s.patient_key
               AND ({_RANK.format(t='s.')}) > ({_RANK.format(t='t.')})""")
    row = conn.execute(f"""
        WITH written AS (
          INSERT INTO {target} AS t ({names}, change_seq, refined_at)
          SELECT {names}, nextval('meta.change_seq'), now() FROM {source} ORDER BY {key}
          ON CONFLICT ({key}) DO UPDATE SET {updates}, change_seq = EXCLUDED.change_seq,
                                            refined_at = EXCLUDED.refined_at
          WHERE ({_RANK.format(t='EXCLUDED.')}) > ({_RANK.format(t='t.')})
          RETURNING 1)
        SELECT count(*) FROM written""").fetchone()
    return row[0]


def _latest_per_key(conn: psycopg.Connection, stage: str, key: str) -> None:
    """Keep one row per key in a stage table: the newest version (see _RANK)."""
    conn.execute(f"ANALYZE {stage}")
    # Only keys seen more than once need ranking: a hash aggregate finds them without sorting.
    conn.execute(f"""
        DELETE FROM {stage} s USING (
          SELECT ctid, row_number() OVER (PARTITION BY {key} ORDER BY {_NEWEST_FIRST}) AS rn
            FROM {stage} WHERE {key} IN (
              SELECT {key} FROM {stage} GROUP BY {key} HAVING count(*) > 1)) r
        WHERE s.ctid = r.ctid AND r.rn > 1""")


def _merge(conn: psycopg.Connection, result: RefineResult) -> None:
    patient_cols = [c.name for c in PATIENT_STAGE]
    observation_cols = [c.name for c in OBSERVATION_STAGE]
    quarantine_cols = ", ".join(c.name for c in QUARANTINE_STAGE)

    staged_patients = conn.execute("SELECT count(*) FROM stage_patient").fetchone()[0]
    _latest_per_key(conn, "stage_patient", "patient_key")
    refined_patients = _upsert(conn, "refined.patient", "stage_patient", patient_cols,
                               "patient_key")
    patients = result.resource("Patient")
    patients.refined += refined_patients
    patients.duplicates += staged_patients - refined_patients

    # Orphans parked earlier whose patient has now arrived move into refined.observation.
    conn.execute("""
        CREATE TEMP TABLE promoted ON COMMIT DROP AS
        WITH moved AS (
          DELETE FROM refined.observation_pending o USING refined.patient p
          WHERE o.patient_key = p.patient_key RETURNING o.*)
        SELECT * FROM moved""")
    _latest_per_key(conn, "promoted", "observation_id")
    result.promoted_orphans = _upsert(conn, "refined.observation", "promoted", observation_cols,
                                      "observation_id")
    conn.execute("DELETE FROM refined.quarantine q USING promoted p "
                 "WHERE q.raw_record_id = p.raw_record_id AND q.reason = %s",
                 (str(Quarantine.UNKNOWN_PATIENT),))

    staged = conn.execute("SELECT count(*) FROM stage_observation").fetchone()[0]
    _latest_per_key(conn, "stage_observation", "observation_id")
    conn.execute("""
        CREATE TEMP TABLE stage_orphan ON COMMIT DROP AS
        SELECT s.* FROM stage_observation s
        WHERE NOT EXISTS (SELECT 1 FROM refined.patient p WHERE p.patient_key = s.patient_key)""")
    orphans = conn.execute("""
        WITH gone AS (DELETE FROM stage_observation s USING stage_orphan o
                      WHERE s.observation_id = o.observation_id RETURNING 1)
        SELECT count(*) FROM gone""").fetchone()[0]
    _upsert(conn, "refined.observation_pending", "stage_orphan", observation_cols,
            "observation_id")
    conn.execute(f"""
        INSERT INTO stage_quarantine ({quarantine_cols})
        SELECT raw_record_id, split_part(raw_record_id, '-', 1), 'Observation', observation_id,
               %s, 'subject is not a refined patient; refined automatically when it arrives'
        FROM stage_orphan""", (str(Quarantine.UNKNOWN_PATIENT),))
    refined_observations = _upsert(conn, "refined.observation", "stage_observation",
                                   observation_cols, "observation_id")
    observations = result.resource("Observation")
    observations.refined += refined_observations
    observations.quarantined += orphans
    observations.duplicates += staged - orphans - refined_observations
    if orphans:
        result.quarantine_reasons[str(Quarantine.UNKNOWN_PATIENT)] += orphans

    conn.execute(f"""
        INSERT INTO refined.quarantine ({quarantine_cols}, quarantined_at)
        SELECT {quarantine_cols}, now() FROM stage_quarantine
        ON CONFLICT (raw_record_id) DO NOTHING""")
