"""Refine: raw batches -> refined.patient / refined.observation / refined.quarantine, once per batch."""

from __future__ import annotations

import multiprocessing
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.config import Settings
from vitalflow.control import (lock_pipeline, mark_refined, next_change_seq, parked_records,
                               record_touches, refined_batches, replace_parked, target_of)
from vitalflow.ingest import Batch
from vitalflow.progress import Reporter, SilentReporter
from vitalflow.refine.gate import RefineGate
from vitalflow.refine.merge import Merge, Staged
from vitalflow.refine.standardise import StandardisedBatch, Standardiser, standardiser_options

if TYPE_CHECKING:
    from vitalflow.partitions.keys import Partition
    from vitalflow.storage import Layers


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


def refine(layers: Layers, settings: Settings, run_id: str,
           reporter: Reporter | None = None, partition: Partition | None = None,
           finish: Callable[[psycopg.Connection, RefineResult], None] | None = None
           ) -> RefineResult:
    """Refine every raw batch not refined into layers.refined before.

    Patient batches go first so observations find their patient. Large runs standardise in two
    worker processes. The set work (newest version per key, upsert if newer, orphans, counts)
    is refine.merge, the same on every engine. Where refined lives in the control database,
    rows and ledger commit in one transaction; elsewhere each write is atomic on its own and
    the batches are marked refined last, so after a crash the next run redoes them and rows it
    had already written compare equal and are left alone.

    partition: only its share of the planned batches' records (vitalflow/partitions); the
    batches are then marked refined once every partition is done, by whoever planned them, and
    finish(control, result) records this partition's outcome in the rows' transaction instead.
    """
    reporter = reporter or SilentReporter()
    result = RefineResult()
    target = target_of(layers.refined, layers.control)
    gate = RefineGate(settings, layers.control.url)
    with layers.refined.transaction(), layers.control.connect() as control:
        if partition is None:  # partitions run side by side: their planner holds this lock
            lock_pipeline(control)
        work = Work.find(control, layers.raw, target, partition)
        result.batches = [b.batch_id for b in work.pending]
        seq = next_change_seq(control)
        gate.open(control, layers.raw, work.pending, link=partition is None)
        staged = Staged()
        work.standardise(layers.raw, settings, gate, result, reporter, staged.add)
        with reporter.step(f"merge into refined ({layers.refined.name})", None):
            merge = Merge(layers.refined, seq, staged, partition)
            merge.run(result)
            record_touches(control, merge.touched, seq)
        work.done(control, target, run_id, gate)
        if finish:
            finish(control, result)
    return result


@dataclass
class Work:
    """What a refine run reads: raw batches not refined into the target yet (Patient batches
    first, so observations find their patient) and observations parked by earlier runs."""

    pending: list[Batch]
    parked: dict[str, list[str]]  # batch id -> raw_record_ids
    hints: dict[str, str | None]  # batch id -> resource type hint
    partition: Partition | None = None
    retried: list[str] = field(default_factory=list)  # parked records of the partition read

    @classmethod
    def find(cls, conn: psycopg.Connection, raw, target: str,
             partition: Partition | None = None) -> Work:
        done = refined_batches(conn, target)
        manifest = raw.manifest()
        planned = partition.batches if partition and partition.batches is not None else None
        pending = sorted((b for b in manifest if b.batch_id not in done
                          and (planned is None or b.batch_id in planned)),
                         key=lambda b: b.resource_type_hint != "Patient")
        return cls(pending, parked_records(conn, target),
                   {b.batch_id: b.resource_type_hint for b in manifest}, partition)

    @property
    def records(self) -> int:
        return sum(b.records for b in self.pending) + sum(map(len, self.parked.values()))

    def chunks(self, raw, batch_rows: int) -> Iterator[tuple[pa.RecordBatch, str | None]]:
        keep = self.partition.keep_raw if self.partition else (lambda records: records)
        for batch in self.pending:
            for records in raw.read(batch.batch_id, batch_rows):
                yield keep(records), batch.resource_type_hint
        for batch_id, ids in self.parked.items():
            wanted = pa.array(ids, pa.string())
            for records in raw.read(batch_id, batch_rows):
                retry = keep(records.filter(pc.is_in(records.column("raw_record_id"), wanted)))
                self.retried += retry.column("raw_record_id").to_pylist()
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
        retried = (self.retried if self.partition
                   else [i for ids in self.parked.values() for i in ids])
        replace_parked(conn, target, retried, gate.parked)
        if self.partition is None:
            mark_refined(conn, target, run_id, [(b.batch_id, b.records) for b in self.pending])


# One Standardiser per worker process, built once by the pool's initializer.
_worker: Standardiser | None = None


def _start_worker(*options) -> None:
    global _worker
    _worker = Standardiser(*options)


def _run_worker(records: pa.RecordBatch, hint: str | None) -> StandardisedBatch:
    return _worker.run(records, hint)


def standardised(chunks: Iterator[tuple[pa.RecordBatch, str | None]], settings: Settings,
                 parallel: bool) -> Iterator[tuple[StandardisedBatch, pa.RecordBatch]]:
    """Standardised chunks, with their raw records, in input order, inline or from two worker
    processes."""
    options = standardiser_options(settings)
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
