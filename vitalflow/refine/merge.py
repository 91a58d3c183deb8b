"""Refine's set work, once for every engine: newest version per key, upsert if newer, orphans
parked and promoted, quarantine, counts. DuckDB over Arrow; the backend only reads and writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from storage_backends.base import Backend
from vitalflow.reasons import Quarantine
from vitalflow.tables import OBSERVATION, OBSERVATION_PENDING, PATIENT, QUARANTINE, Table

if TYPE_CHECKING:
    from vitalflow.partitions.keys import Partition
    from vitalflow.refine.run import RefineResult

_ORPHAN_DETAIL = "subject is not a refined patient; refined automatically when it arrives"
_UNBORN_DETAIL = "effective time is before the patient's birth date (as refined)"
_RANK_COLUMNS = ["version", "last_updated", "content_hash"]
# Newest version wins: versionId, then lastUpdated, then the content hash as a stable tie-break,
# so the outcome does not depend on the order records arrive in.
_RANK_TERMS = ("coalesce({t}version, -1)", "coalesce({t}last_updated, '-infinity'::timestamptz)",
               "{t}content_hash")


def rank(alias: str = "", order: str = "") -> str:
    """The version-ranking key of a row, e.g. rank("t.") or rank(order=" DESC")."""
    return ", ".join(term.format(t=alias) + order for term in _RANK_TERMS)


def newer_than(new: str, old: str) -> str:
    """SQL: the row aliased new ranks strictly above the one aliased old."""
    return f"({rank(new)}) > ({rank(old)})"


class Staged:
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


class Merge:
    def __init__(self, refined: Backend, seq: int, staged: Staged,
                 partition: Partition | None = None) -> None:
        self.refined = refined
        self.seq = seq
        self.staged = staged
        self.partition = partition  # promotes only the parked observations of its patients
        self.now = datetime.now(UTC)
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone = 'UTC'")
        self.touched: list[str] = []

    def run(self, result: RefineResult) -> None:
        patients = self._latest(self.staged.table("patients", _stage_schema(PATIENT)),
                                "patient_key")
        written_patients = self._write_newer(PATIENT, patients, owner="person_key").num_rows
        observations = self._latest(
            self.staged.table("observations", _stage_schema(OBSERVATION)), "observation_id")
        known = self._known_patients(observations, patients)
        is_known = pc.is_in(observations.column("patient_key"), known)
        born = observations.filter(is_known)
        unborn = self._before_birth(born)
        born = born.filter(pc.invert(pc.is_in(born.column("observation_id"),
                                              unborn.column("observation_id"))))
        written_observations = self._write_newer(OBSERVATION, born, owner="patient_key").num_rows
        orphans = observations.filter(pc.invert(is_known))
        # Only the orphans parked by this record are quarantined: an exact copy of one parked
        # earlier is a duplicate, and its quarantine row would outlive the promotion.
        parked_rows = self._write_newer(OBSERVATION_PENDING, orphans)
        parked_rows = pa.concat_tables([parked_rows.select(orphans.column_names),
                                        self._parked_by_an_interrupted_run(orphans, parked_rows)])
        parked = parked_rows.num_rows
        quarantine = pa.concat_tables([
            self.staged.table("quarantine", _stage_schema(QUARANTINE)),
            _quarantine_rows(parked_rows, Quarantine.UNKNOWN_PATIENT, _ORPHAN_DETAIL),
            _quarantine_rows(unborn, Quarantine.IMPLAUSIBLE_DATE, _UNBORN_DETAIL)],
            promote_options="permissive")
        promoted = self._promote()
        quarantine = quarantine.filter(pc.invert(pc.is_in(
            quarantine.column("raw_record_id"), promoted.column("raw_record_id"))))
        self._quarantine(quarantine)
        result.promoted_orphans = self._forget_promoted(promoted)
        if parked:
            result.quarantine_reasons[str(Quarantine.UNKNOWN_PATIENT)] += parked
        if unborn.num_rows:
            result.quarantine_reasons[str(Quarantine.IMPLAUSIBLE_DATE)] += unborn.num_rows
        for resource_type, refined in (("Patient", written_patients),
                                       ("Observation", written_observations)):
            counts = result.resource(resource_type)
            counts.refined = refined
            if resource_type == "Observation":
                counts.quarantined += parked + unborn.num_rows
            counts.duplicates = (counts.read - counts.refined - counts.quarantined
                                 - counts.filtered - counts.pending)

    def _latest(self, rows: pa.Table, key: str) -> pa.Table:
        """One row per key: the newest version (see refine.rank); of exact copies, the lowest
        raw_record_id, so which copy is kept does not depend on how the rows were split up."""
        if rows.num_rows == pc.count_distinct(rows.column(key)).as_py():
            return rows
        return self.db.execute(
            f"SELECT * FROM rows QUALIFY row_number() OVER (PARTITION BY {key} "
            f"ORDER BY {rank(order=' DESC')}, raw_record_id) = 1").arrow().read_all()

    def _write_newer(self, table: Table, rows: pa.Table, owner: str | None = None
                     ) -> pa.Table:
        """Write the rows that are strictly newer than the stored version of their key;
        returns them. owner: the column naming whom a row belongs to (an observation's
        patient, a record's person); when a newer version changes it, the one it left is
        touched, so derive recomputes it too."""
        if not rows.num_rows:
            return rows
        key = table.primary_key[0]
        tracked = owner or "patient_key"
        stored = self.refined.read(table, list(dict.fromkeys([key, tracked, *_RANK_COLUMNS])),
                                   where=[(key, "in", rows.column(key))])
        if stored.num_rows:
            winners = self.db.execute(f"""
                SELECT r.*, s.{tracked} AS stored_owner FROM rows r
                  LEFT JOIN stored s USING ({key})
                 WHERE s.{key} IS NULL OR {newer_than('r.', 's.')}""").arrow().read_all()
            if owner:
                moved = pc.and_(pc.is_valid(winners.column("stored_owner")),
                                pc.not_equal(winners.column("stored_owner"),
                                             winners.column(owner)))
                self.touched += pc.unique(winners.filter(moved).column("stored_owner")
                                          ).to_pylist()
            rows = winners.drop_columns(["stored_owner"])
        rows = self._stamped(rows)
        # Keys not stored yet are appended (a bulk load on every engine); the rest replace.
        if not stored.num_rows:
            self.refined.append(table, rows)
            return rows
        known = pc.is_in(rows.column(key), stored.column(key).combine_chunks())
        self.refined.append(table, rows.filter(pc.invert(known)))
        self.refined.upsert(table, rows.filter(known))
        return rows

    def _parked_by_an_interrupted_run(self, orphans: pa.Table, written: pa.Table) -> pa.Table:
        """Orphans this very record parked before: a run that stopped between parking and
        quarantining them (engines without one transaction for both) left them parked with no
        quarantine row, and the batch is being refined again."""
        stored = self.refined.read(OBSERVATION_PENDING, ["raw_record_id"], where=[
            ("observation_id", "in", orphans.column("observation_id"))])
        again = pc.and_(
            pc.is_in(orphans.column("raw_record_id"), stored.column("raw_record_id").combine_chunks()),
            pc.invert(pc.is_in(orphans.column("raw_record_id"), written.column("raw_record_id"))))
        return orphans.filter(again)

    def _stamped(self, rows: pa.Table) -> pa.Table:
        return rows.append_column("change_seq", pa.array([self.seq] * rows.num_rows, pa.int64())
                                  ).append_column("refined_at", pa.array(
                                      [self.now] * rows.num_rows, pa.timestamp("us", "UTC")))

    def _before_birth(self, observations: pa.Table) -> pa.Table:
        """Observations taken before their patient's (stored, generalised) birth date: the
        patient rows of this run are written by now, so the stored ones are current."""
        if not observations.num_rows:
            return observations
        births = self.refined.read(PATIENT, ["patient_key", "birth_date"], where=[  # noqa: F841
            ("patient_key", "in", pc.unique(observations.column("patient_key")))])
        return self.db.execute("""
            SELECT o.* FROM observations o JOIN births b USING (patient_key)
             WHERE o.effective_at::date < b.birth_date""").arrow().read_all()

    def _known_patients(self, observations: pa.Table, patients: pa.Table) -> pa.Array:
        wanted = pc.unique(observations.column("patient_key"))
        stored = self.refined.read(PATIENT, ["patient_key"], where=[("patient_key", "in", wanted)])
        return pc.unique(pa.concat_arrays([stored.column("patient_key").combine_chunks(),
                                           patients.column("patient_key").combine_chunks()]))

    def _promote(self) -> pa.Table:
        """Parked observations whose patient has arrived move into refined.observation."""
        parked = self.refined.read(OBSERVATION_PENDING)
        if self.partition and parked.num_rows:
            parked = parked.filter(self.partition.mask(parked.column("patient_key")))
        if not parked.num_rows:
            return parked
        present = self.refined.read(PATIENT, ["patient_key"], where=[
            ("patient_key", "in", pc.unique(parked.column("patient_key")))])
        promoted = parked.filter(pc.is_in(parked.column("patient_key"),
                                          present.column("patient_key").combine_chunks()))
        if promoted.num_rows:
            self._write_newer(OBSERVATION, promoted.drop_columns(["change_seq", "refined_at"]),
                              owner="patient_key")
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


def _quarantine_rows(rows: pa.Table, reason: Quarantine, detail: str) -> pa.Table:
    ids = rows.column("raw_record_id")
    return pa.table({
        "raw_record_id": ids,
        "batch_id": pc.list_element(pc.split_pattern(ids, "-", max_splits=1), 0),
        "resource_type": pa.array(["Observation"] * rows.num_rows),
        "resource_id": rows.column("observation_id"),
        "reason": pa.array([str(reason)] * rows.num_rows),
        "detail": pa.array([detail] * rows.num_rows),
    }, schema=_stage_schema(QUARANTINE))
