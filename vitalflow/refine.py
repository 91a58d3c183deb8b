"""Refine: raw batches -> refined.patient / refined.observation / refined.quarantine, atomically."""

from __future__ import annotations

import multiprocessing
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from storage_backends.postgres import PostgresBackend
from vitalflow.config import Settings
from vitalflow.control import (CONTROL, lock_pipeline, mark_refined, next_change_seq,
                               parked_records, refined_batches, replace_parked)
from vitalflow.database import create_observation_indexes, drop_observation_indexes
from vitalflow.gate import GATED_OBSERVATION, GATED_PATIENT, RefineGate
from vitalflow.progress import Reporter, SilentReporter
from vitalflow.raw import Batch, RawStore
from vitalflow.reasons import Quarantine
from vitalflow.standardise import QUARANTINE_STAGE, StandardisedBatch, Standardiser

# Newest version wins: versionId, then lastUpdated, then the content hash as a stable tie-break,
# so the outcome does not depend on the order records arrive in.
_RANK_TERMS = ("coalesce({t}version, -1)", "coalesce({t}last_updated, '-infinity'::timestamptz)",
               "{t}content_hash")


def rank(alias: str = "", order: str = "") -> str:
    """The version-ranking key of a row, e.g. rank("t.") or rank(order=" DESC")."""
    return ", ".join(term.format(t=alias) + order for term in _RANK_TERMS)


def newer_than(new: str, old: str) -> str:
    """SQL (PostgreSQL and DuckDB): the row aliased new ranks strictly above the one aliased old."""
    return f"({rank(new)}) > ({rank(old)})"


@dataclass
class ResourceCounts:
    read: int = 0
    refined: int = 0
    quarantined: int = 0
    filtered: int = 0
    duplicates: int = 0
    pending: int = 0  # parked until the terminology server can check them; retried next run

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class RefineResult:
    batches: list[str] = field(default_factory=list)
    counts: dict[str, ResourceCounts] = field(default_factory=dict)
    quarantine_reasons: Counter = field(default_factory=Counter)
    filter_reasons: Counter = field(default_factory=Counter)
    promoted_orphans: int = 0
    persons_moved: int = 0  # records given another person by merging or a reviewer
    terminology: dict = field(default_factory=dict)  # outcomes and calls of the terminology step

    def resource(self, resource_type: str) -> ResourceCounts:
        return self.counts.setdefault(resource_type, ResourceCounts())


def refine(store: PostgresBackend, raw: RawStore, settings: Settings, run_id: str,
           reporter: Reporter | None = None) -> RefineResult:
    """Refine every raw batch not refined before, in one transaction (all or nothing).

    Patient batches go first so observations find their patient. Large runs standardise in two
    worker processes while this one merges the previous chunk, so both cores work.
    """
    reporter = reporter or SilentReporter()
    result = RefineResult()
    with store.connect() as conn:
        lock_pipeline(conn)
        conn.execute("SET LOCAL work_mem = '256MB'")
        work = Work.find(conn, raw, CONTROL)
        result.batches = [b.batch_id for b in work.pending]
        start_seq = _create_stages(conn)
        merge = _ChunkMerge(store, conn)
        gate = RefineGate(settings, conn, store.url, raw, work.pending)
        merge.open()
        work.standardise(raw, settings, gate, result, reporter, merge.chunk)
        with reporter.step("merge into refined", None):
            merge.close()
            _finish(conn, result, start_seq)
        work.done(conn, CONTROL, run_id, gate)
    return result


@dataclass
class Work:
    """What a refine run reads: raw batches not refined into the target yet (Patient batches
    first, so observations find their patient) and observations parked by earlier runs."""

    pending: list[Batch]
    parked: dict[str, list[str]]  # batch id -> raw_record_ids
    hints: dict[str, str | None]  # batch id -> resource type hint

    @classmethod
    def find(cls, conn: psycopg.Connection, raw, target: str) -> Work:
        done = refined_batches(conn, target)
        manifest = raw.manifest()
        pending = sorted((b for b in manifest if b.batch_id not in done),
                         key=lambda b: b.resource_type_hint != "Patient")
        return cls(pending, parked_records(conn, target),
                   {b.batch_id: b.resource_type_hint for b in manifest})

    @property
    def records(self) -> int:
        return sum(b.records for b in self.pending) + sum(map(len, self.parked.values()))

    def chunks(self, raw, batch_rows: int) -> Iterator[tuple[pa.RecordBatch, str | None]]:
        for batch in self.pending:
            for records in raw.read(batch.batch_id, batch_rows):
                yield records, batch.resource_type_hint
        for batch_id, ids in self.parked.items():
            wanted = pa.array(ids, pa.string())
            for records in raw.read(batch_id, batch_rows):
                retry = records.filter(pc.is_in(records.column("raw_record_id"), wanted))
                if retry.num_rows:
                    yield retry, self.hints.get(batch_id)

    def standardise(self, raw, settings: Settings, gate: RefineGate, result: RefineResult,
                    reporter: Reporter, sink: Callable[[StandardisedBatch], None]) -> None:
        """Every chunk standardised, through the gate, into sink and the run's counts."""
        parallel = self.records >= settings.refine.worker_process_min_records
        try:
            with reporter.step("refine", self.records) as bar:
                for out, records in standardised(self.chunks(raw, settings.ingest.batch_rows),
                                                 settings, parallel):
                    out = gate.apply(out, records)
                    sink(out)
                    tally(result, out)
                    bar.advance(records.num_rows)
        finally:
            result.terminology = gate.close()

    def done(self, conn: psycopg.Connection, target: str, run_id: str, gate: RefineGate
             ) -> None:
        """Record the run's outcome in the ledger: the last write, so a crash redoes it all."""
        gate.record(conn)
        replace_parked(conn, target, [i for ids in self.parked.values() for i in ids],
                       gate.parked)
        mark_refined(conn, target, run_id, [(b.batch_id, b.records) for b in self.pending])


# One Standardiser per worker process, built once by the pool's initializer.
_worker: Standardiser | None = None


def _start_worker(codes: list[str], statuses: list[str], max_bytes: int,
                  future_tolerance: timedelta) -> None:
    global _worker
    _worker = Standardiser(codes, statuses, max_bytes, future_tolerance)


def _run_worker(records: pa.RecordBatch, hint: str | None) -> StandardisedBatch:
    return _worker.run(records, hint)


def standardised(chunks: Iterator[tuple[pa.RecordBatch, str | None]], settings: Settings,
                 parallel: bool) -> Iterator[tuple[StandardisedBatch, pa.RecordBatch]]:
    """Standardised chunks, with their raw records, in input order, inline or from two worker
    processes."""
    options = (settings.refine.observation_codes, settings.refine.excluded_statuses,
               settings.ingest.max_record_bytes,
               timedelta(hours=settings.refine.future_tolerance_hours))
    if not parallel:
        standardiser = Standardiser(*options)
        for records, hint in chunks:
            yield standardiser.run(records, hint), records
        return
    # spawn, not fork: the parent may hold threads (Prefect) and an open connection.
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_worker, initargs=options) as pool:
        window: deque = deque()
        for records, hint in chunks:
            window.append((pool.submit(_run_worker, records, hint), records))
            if len(window) > 2:
                future, records = window.popleft()
                yield future.result(), records
        while window:
            future, records = window.popleft()
            yield future.result(), records


def _create_stages(conn: psycopg.Connection) -> int:
    """Temporary stage tables; returns the change sequence value before this run's writes."""
    for name, source, columns in (("stage_patient", "refined.patient", GATED_PATIENT),
                                  ("stage_observation", "refined.observation", GATED_OBSERVATION),
                                  ("stage_orphan", "refined.observation", GATED_OBSERVATION),
                                  ("stage_quarantine", "refined.quarantine", QUARANTINE_STAGE)):
        names = ", ".join(c.name for c in columns)
        conn.execute(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS "
                     f"SELECT {names} FROM {source} WITH NO DATA")
    return next_change_seq(conn)


class _ChunkMerge:
    """Merges one standardised chunk into refined."""

    def __init__(self, store: PostgresBackend, conn: psycopg.Connection) -> None:
        self.store = store
        self.conn = conn
        self.patient_cols = [c.name for c in GATED_PATIENT]
        self.observation_cols = [c.name for c in GATED_OBSERVATION]
        self.quarantine_cols = ", ".join(c.name for c in QUARANTINE_STAGE)
        # On a first load no id can be in the table yet but those this run wrote: tracking
        # them here saves a probe of the primary key per row.
        self.first_load = not conn.execute(
            "SELECT EXISTS (SELECT 1 FROM refined.observation)").fetchone()[0]
        self.written: set[str] = set()
        self.known_patients: set[str] = set()

    def chunk(self, out) -> None:
        conn = self.conn
        self.store.copy_arrow(conn, "stage_quarantine", out.quarantine)
        if out.patients.num_rows:
            conn.execute("TRUNCATE stage_patient")
            self.store.copy_arrow(conn, "stage_patient", out.patients)
            _latest_per_key(conn, "stage_patient", "patient_key")
            _upsert(conn, "refined.patient", "stage_patient", self.patient_cols, "patient_key")
            self.known_patients.update(out.patients.column("patient_key").to_pylist())
        if out.observations.num_rows:
            direct, rest = self._split_new(out.observations)
            # New ids of known patients, once in the chunk: nothing to merge, COPY straight in.
            self.store.copy_arrow(conn, "refined.observation", direct)
            if self.first_load:
                self.store.copy_arrow(conn, "stage_observation", rest)  # merged in close()
            elif rest.num_rows:
                conn.execute("TRUNCATE stage_observation")
                self.store.copy_arrow(conn, "stage_observation", rest)
                self._merge_observations()

    def open(self) -> None:
        if self.first_load:
            drop_observation_indexes(self.conn)

    def close(self) -> None:
        if self.first_load:
            create_observation_indexes(self.conn)
            self._merge_observations()

    def _merge_observations(self) -> None:
        _latest_per_key(self.conn, "stage_observation", "observation_id")
        self._park_orphans()
        _upsert(self.conn, "refined.observation", "stage_observation", self.observation_cols,
                "observation_id")

    def _split_new(self, rows: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Rows that can be COPYed straight in, and the rest, which need merging."""
        keys = rows.column("observation_id")
        counts = pc.value_counts(keys)
        repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
        ids = keys.to_pylist()
        if self.first_load:
            existing = [key for key in ids if key in self.written]
            self.written.update(ids)  # conservative: a parked orphan only takes the slow path
        else:
            existing = [r[0] for r in self.conn.execute(
                "SELECT observation_id FROM refined.observation WHERE observation_id = ANY(%s)",
                (ids,))]
        patients = pc.unique(rows.column("patient_key")).to_pylist()
        unknown = [key for key in patients if key not in self.known_patients]
        self.known_patients.update(r[0] for r in self.conn.execute(
            "SELECT patient_key FROM refined.patient WHERE patient_key = ANY(%s)", (unknown,)))
        present = [key for key in patients if key in self.known_patients]
        merge_needed = pa.concat_arrays([repeated, pa.array(existing, pa.string())])
        direct = pc.and_(pc.invert(pc.is_in(keys, merge_needed)),
                         pc.is_in(rows.column("patient_key"), pa.array(present, pa.string())))
        return rows.filter(direct), rows.filter(pc.invert(direct))

    def _park_orphans(self) -> None:
        """Observations of unknown patients wait in observation_pending, quarantined."""
        conn = self.conn
        conn.execute("TRUNCATE stage_orphan")
        conn.execute("""
            WITH gone AS (
              DELETE FROM stage_observation s
               WHERE NOT EXISTS (SELECT 1 FROM refined.patient p
                                  WHERE p.patient_key = s.patient_key)
              RETURNING s.*)
            INSERT INTO stage_orphan SELECT * FROM gone""")
        _upsert(conn, "refined.observation_pending", "stage_orphan", self.observation_cols,
                "observation_id")
        # issue 12: only orphans the upsert kept are quarantined; an exact copy of one parked
        # by an earlier run is a duplicate, and its row would outlive the promotion.
        conn.execute(f"""
            INSERT INTO stage_quarantine ({self.quarantine_cols})
            SELECT s.raw_record_id, split_part(s.raw_record_id, '-', 1), 'Observation',
                   s.observation_id, %s,
                   'subject is not a refined patient; refined automatically when it arrives'
              FROM stage_orphan s JOIN refined.observation_pending p
                ON p.observation_id = s.observation_id AND p.raw_record_id = s.raw_record_id""",
                     (str(Quarantine.UNKNOWN_PATIENT),))


def tally(result: RefineResult, out) -> None:
    for resource_type, n in out.read.items():
        result.resource(resource_type).read += n
    for (resource_type, reason), n in out.filtered.items():
        result.resource(resource_type).filtered += n
        result.filter_reasons[reason] += n
    if out.parked:
        result.resource("Observation").pending += len(out.parked)
    for resource_type, reason in zip(out.quarantine.column("resource_type").to_pylist(),
                                     out.quarantine.column("reason").to_pylist(), strict=True):
        result.resource(resource_type).quarantined += 1
        result.quarantine_reasons[reason] += 1


def _upsert(conn: psycopg.Connection, target: str, source: str, columns: list[str],
            key: str) -> None:
    """Insert rows of source, replacing existing rows only with a strictly newer version."""
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    conn.execute(f"""
        INSERT INTO {target} AS t ({names}, change_seq, refined_at)
        SELECT {names}, nextval('meta.change_seq'), now() FROM {source}
        ON CONFLICT ({key}) DO UPDATE SET {updates}, change_seq = EXCLUDED.change_seq,
                                          refined_at = EXCLUDED.refined_at
        WHERE {newer_than('EXCLUDED.', 't.')}""")


def _latest_per_key(conn: psycopg.Connection, stage: str, key: str) -> None:
    """Keep one row per key in a stage table: the newest version (see rank)."""
    # Only keys seen more than once need ranking: a hash aggregate finds them without sorting.
    conn.execute(f"""
        DELETE FROM {stage} s USING (
          SELECT ctid,
                 row_number() OVER (PARTITION BY {key} ORDER BY {rank(order=' DESC')}) AS rn
            FROM {stage} WHERE {key} IN (
              SELECT {key} FROM {stage} GROUP BY {key} HAVING count(*) > 1)) r
        WHERE s.ctid = r.ctid AND r.rn > 1""")


def _finish(conn: psycopg.Connection, result: RefineResult, start_seq: int) -> None:
    """Promote orphans whose patient arrived, then count what this run wrote."""
    conn.execute("""
        CREATE TEMP TABLE promoted ON COMMIT DROP AS
        WITH moved AS (
          DELETE FROM refined.observation_pending o USING refined.patient p
          WHERE o.patient_key = p.patient_key RETURNING o.*)
        SELECT * FROM moved""")
    _upsert(conn, "refined.observation", "promoted", [c.name for c in GATED_OBSERVATION],
            "observation_id")
    # Orphans parked earlier in this same run were never quarantined for good.
    conn.execute("DELETE FROM stage_quarantine q USING promoted p "
                 "WHERE q.raw_record_id = p.raw_record_id")
    result.promoted_orphans = conn.execute(
        "WITH gone AS (DELETE FROM refined.quarantine q USING promoted p "
        "WHERE q.raw_record_id = p.raw_record_id AND q.reason = %s RETURNING 1) "
        "SELECT count(*) FROM gone", (str(Quarantine.UNKNOWN_PATIENT),)).fetchone()[0]
    quarantine_cols = ", ".join(c.name for c in QUARANTINE_STAGE)
    conn.execute(f"""
        INSERT INTO refined.quarantine ({quarantine_cols}, quarantined_at)
        SELECT {quarantine_cols}, now() FROM stage_quarantine
        ON CONFLICT (raw_record_id) DO NOTHING""")

    def written(table: str) -> int:
        return conn.execute(f"SELECT count(*) FROM {table} WHERE change_seq > %s",
                            (start_seq,)).fetchone()[0]

    orphans = written("refined.observation_pending")
    if orphans:
        result.quarantine_reasons[str(Quarantine.UNKNOWN_PATIENT)] += orphans
    for resource_type, refined in (("Patient", written("refined.patient")),
                                   ("Observation", written("refined.observation")
                                    - result.promoted_orphans)):
        counts = result.resource(resource_type)
        counts.refined = refined
        if resource_type == "Observation":
            counts.quarantined += orphans
        # Every other staged record was an exact copy or an older version of one kept.
        counts.duplicates = (counts.read - counts.refined - counts.quarantined - counts.filtered
                             - counts.pending)
    if sum(c.refined for c in result.counts.values()):
        # Fresh statistics before derive plans its per-person lookups: without them a first
        # load's derive picks sequential scans and takes minutes instead of a second.
        conn.execute("ANALYZE refined.patient, refined.observation")
