"""Refine on any backend: the set work runs in DuckDB over Arrow; the backend reads and upserts."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.config import Settings
from vitalflow.control import lock_pipeline, next_change_seq, record_touches, target_of
from vitalflow.database import OBSERVATION_PENDING
from vitalflow.gate import RefineGate
from vitalflow.progress import Reporter, SilentReporter
from vitalflow.reasons import Quarantine
from vitalflow.refine import RefineResult, Work, newer_than, rank
from vitalflow.storage import Layers
from vitalflow.tables import OBSERVATION, PATIENT, QUARANTINE, Table

_ORPHAN_DETAIL = "subject is not a refined patient; refined automatically when it arrives"
_RANK_COLUMNS = ["version", "last_updated", "content_hash"]


def refine_portable(layers: Layers, settings: Settings, run_id: str,
                    reporter: Reporter | None = None) -> RefineResult:
    """Refine every raw batch not refined into layers.refined before.

    Each write is atomic on its own (all together where the engine has transactions); the
    batches are marked refined last, so after a crash the next run redoes them, and rows it
    had already written compare equal and are left alone.
    """
    reporter = reporter or SilentReporter()
    result = RefineResult()
    target = target_of(layers.refined, layers.control)
    with layers.control.connect() as control:
        lock_pipeline(control)
        work = Work.find(control, layers.raw, target)
        result.batches = [b.batch_id for b in work.pending]
        seq = next_change_seq(control)
        staged = _Staged()
        gate = RefineGate(settings, control, layers.control.url, layers.raw, work.pending)
        work.standardise(layers.raw, settings, gate, result, reporter, staged.add)
        with reporter.step(f"merge into refined ({layers.refined.name})", None):
            merge = _Merge(layers, seq, staged)
            with layers.refined.transaction():
                merge.run(result)
            record_touches(control, merge.touched, seq)
        work.done(control, target, run_id, gate)
    return result


class _Staged:
    """This run's standardised rows, gathered for set work."""

    def __init__(self) -> None:
        self.parts: dict[str, list[pa.Table]] = {"patients": [], "observations": [],
                                                 "quarantine": []}

    def add(self, out) -> None:
        for name, part in (("patients", out.patients), ("observations", out.observations),
                           ("quarantine", out.quarantine)):
            if part.num_rows:
                self.parts[name].append(part)

    def table(self, name: str, schema: pa.Schema) -> pa.Table:
        parts = self.parts[name]
        return pa.concat_tables(parts) if parts else schema.empty_table()


class _Merge:
    def __init__(self, layers: Layers, seq: int, staged: _Staged) -> None:
        self.refined = layers.refined
        self.seq = seq
        self.staged = staged
        self.now = datetime.now(UTC)
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone = 'UTC'")
        self.touched: list[str] = []

    def run(self, result: RefineResult) -> None:
        patients = self._latest(self.staged.table("patients", _stage_schema(PATIENT)),
                                "patient_key")
        written_patients = self._write_newer(PATIENT, patients)
        observations = self._latest(
            self.staged.table("observations", _stage_schema(OBSERVATION)), "observation_id")
        known = self._known_patients(observations, patients)
        is_known = pc.is_in(observations.column("patient_key"), known)
        written_observations = self._write_newer(OBSERVATION, observations.filter(is_known),
                                                 track_moves=True)
        orphans = observations.filter(pc.invert(is_known))
        # issue 12: only the orphans written are quarantined (an exact copy of a parked one
        # is a duplicate; its quarantine row would outlive the promotion)
        parked_rows = self._newer_rows_written(OBSERVATION_PENDING, orphans)
        parked = parked_rows.num_rows
        quarantine = pa.concat_tables([
            self.staged.table("quarantine", _stage_schema(QUARANTINE)),
            _orphan_quarantine(parked_rows)], promote_options="permissive")
        promoted = self._promote()
        quarantine = quarantine.filter(pc.invert(pc.is_in(
            quarantine.column("raw_record_id"), promoted.column("raw_record_id"))))
        self._quarantine(quarantine)
        result.promoted_orphans = self._forget_promoted(promoted)
        if parked:
            result.quarantine_reasons[str(Quarantine.UNKNOWN_PATIENT)] += parked
        for resource_type, refined in (("Patient", written_patients),
                                       ("Observation", written_observations)):
            counts = result.resource(resource_type)
            counts.refined = refined
            if resource_type == "Observation":
                counts.quarantined += parked
            counts.duplicates = (counts.read - counts.refined - counts.quarantined
                                 - counts.filtered - counts.pending)

    def _latest(self, rows: pa.Table, key: str) -> pa.Table:
        """One row per key: the newest version (see refine.rank)."""
        if rows.num_rows == pc.count_distinct(rows.column(key)).as_py():
            return rows
        return self.db.execute(
            f"SELECT * FROM rows QUALIFY row_number() OVER "
            f"(PARTITION BY {key} ORDER BY {rank(order=' DESC')}) = 1").arrow().read_all()

    def _write_newer(self, table: Table, rows: pa.Table, track_moves: bool = False) -> int:
        """Upsert the rows that are strictly newer than the stored version of their key."""
        return self._newer_rows_written(table, rows, track_moves).num_rows

    def _newer_rows_written(self, table: Table, rows: pa.Table,
                            track_moves: bool = False) -> pa.Table:
        """_write_newer, returning the rows written."""
        if not rows.num_rows:
            return rows
        key = table.primary_key[0]
        stored = self.refined.read(table, list(dict.fromkeys([key, "patient_key", *_RANK_COLUMNS])),
                                   where=[(key, "in", rows.column(key))])
        if stored.num_rows:
            winners = self.db.execute(f"""
                SELECT r.*, s.patient_key AS stored_patient FROM rows r
                  LEFT JOIN stored s USING ({key})
                 WHERE s.{key} IS NULL OR {newer_than('r.', 's.')}""").arrow().read_all()
            if track_moves:
                moved = pc.and_(pc.is_valid(winners.column("stored_patient")),
                                pc.not_equal(winners.column("stored_patient"),
                                             winners.column("patient_key")))
                self.touched += pc.unique(winners.filter(moved).column("stored_patient")
                                          ).to_pylist()
            rows = winners.drop_columns(["stored_patient"])
        self.refined.upsert(table, self._stamped(rows))
        return rows

    def _stamped(self, rows: pa.Table) -> pa.Table:
        return rows.append_column("change_seq", pa.array([self.seq] * rows.num_rows, pa.int64())
                                  ).append_column("refined_at", pa.array(
                                      [self.now] * rows.num_rows, pa.timestamp("us", "UTC")))

    def _known_patients(self, observations: pa.Table, patients: pa.Table) -> pa.Array:
        wanted = pc.unique(observations.column("patient_key"))
        stored = self.refined.read(PATIENT, ["patient_key"], where=[("patient_key", "in", wanted)])
        return pc.unique(pa.concat_arrays([stored.column("patient_key").combine_chunks(),
                                           patients.column("patient_key").combine_chunks()]))

    def _promote(self) -> pa.Table:
        """Parked observations whose patient has arrived move into refined.observation."""
        parked = self.refined.read(OBSERVATION_PENDING)
        if not parked.num_rows:
            return parked
        present = self.refined.read(PATIENT, ["patient_key"], where=[
            ("patient_key", "in", pc.unique(parked.column("patient_key")))])
        promoted = parked.filter(pc.is_in(parked.column("patient_key"),
                                          present.column("patient_key").combine_chunks()))
        if promoted.num_rows:
            self._write_newer(OBSERVATION, promoted.drop_columns(["change_seq", "refined_at"]),
                              track_moves=True)
            self.refined.delete(OBSERVATION_PENDING, promoted.select(["observation_id"]))
        return promoted

    def _quarantine(self, rows: pa.Table) -> None:
        """New quarantine rows; a record quarantined before keeps its first entry."""
        stored = self.refined.read(QUARANTINE, ["raw_record_id"], where=[
            ("raw_record_id", "in", rows.column("raw_record_id"))])
        rows = rows.filter(pc.invert(pc.is_in(rows.column("raw_record_id"),
                                              stored.column("raw_record_id").combine_chunks())))
        rows = self._latest_quarantine(rows)
        self.refined.append(QUARANTINE, rows.append_column(
            "quarantined_at", pa.array([self.now] * rows.num_rows, pa.timestamp("us", "UTC"))))

    def _latest_quarantine(self, rows: pa.Table) -> pa.Table:
        if rows.num_rows == pc.count_distinct(rows.column("raw_record_id")).as_py():
            return rows
        return self.db.execute("SELECT * FROM rows QUALIFY row_number() OVER "
                               "(PARTITION BY raw_record_id) = 1").arrow().read_all()

    def _forget_promoted(self, promoted: pa.Table) -> int:
        """Earlier runs quarantined the promoted observations as unknown_patient: no longer."""
        if not promoted.num_rows:
            return 0
        stored = self.refined.read(QUARANTINE, ["raw_record_id"], where=[
            ("raw_record_id", "in", promoted.column("raw_record_id")),
            ("reason", "=", str(Quarantine.UNKNOWN_PATIENT))])
        self.refined.delete(QUARANTINE, stored)
        return stored.num_rows


def _stage_schema(table: Table) -> pa.Schema:
    return pa.schema([f for f in table.arrow_schema
                      if f.name not in ("change_seq", "refined_at", "quarantined_at")])


def _orphan_quarantine(orphans: pa.Table) -> pa.Table:
    ids = orphans.column("raw_record_id")
    return pa.table({
        "raw_record_id": ids,
        "batch_id": pc.list_element(pc.split_pattern(ids, "-", max_splits=1), 0),
        "resource_type": pa.array(["Observation"] * orphans.num_rows),
        "resource_id": orphans.column("observation_id"),
        "reason": pa.array([str(Quarantine.UNKNOWN_PATIENT)] * orphans.num_rows),
        "detail": pa.array([_ORPHAN_DETAIL] * orphans.num_rows),
    }, schema=_stage_schema(QUARANTINE))
