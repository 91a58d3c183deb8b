"""One run orchestration (ingest -> refine -> derive) for the CLI, rebuild and the Prefect flows."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from storage_backends.base import BackendUnavailable
from vitalflow.audit.runs import RunAudit
from vitalflow.config import Settings
from vitalflow.control import claim_run, target_of
from vitalflow.database import ensure_layers
from vitalflow.derive.run import derive_age_band_summary, derive_patient_bmi
from vitalflow.derive.sql import BMI_FLOW, SUMMARY_FLOW, DeriveResult
from vitalflow.ingest.run import IngestSummary, ingest
from vitalflow.lineage.recorder import JobRun, LineageRecorder
from vitalflow.monitoring.run_metrics import push_run_metrics
from vitalflow.progress import Reporter, SilentReporter
from vitalflow.refine.persons import reconcile_persons
from vitalflow.refine.run import RefineResult, refine
from vitalflow.storage import Layers, describe, open_layers
from vitalflow.tables import AGE_BAND_SUMMARY, DERIVED_TABLES, PATIENT_BMI_LATEST, REFINED_TABLES

__all__ = ["PipelineRun", "derive_stage", "ingest", "rebuild", "refine_stage", "run"]
log = logging.getLogger("vitalflow.pipeline")


# -- the stages: each takes open layers and does its work, nothing else ----------------------

def refine_stage(settings: Settings, layers: Layers, run_id: str,
                 reporter: Reporter | None = None) -> RefineResult:
    """Refine new raw batches, then give every patient record the person merging says."""
    result = refine(layers, settings, run_id, reporter)
    result.persons_moved = reconcile_persons(layers, settings)
    return result


# Each derived table's owner flow and the function that computes it (one owner per table).
DERIVED_OWNERS = {
    BMI_FLOW: (PATIENT_BMI_LATEST, derive_patient_bmi),
    SUMMARY_FLOW: (AGE_BAND_SUMMARY, lambda layers, config, full: derive_age_band_summary(
        layers, config)),  # the summary is recomputed from the BMI table, full or not
}


def derive_table(settings: Settings, layers: Layers, flow: str, full: bool = False,
                 job=None) -> dict:
    """One derived table by its owner flow's function; job(flow) (a context manager yielding
    where to put the rows written) wraps it, for lineage."""
    table, compute = DERIVED_OWNERS[flow]
    with (job or (lambda name: nullcontext(JobRun())))(flow) as lineage:
        result = compute(layers, settings.derive, full)
        lineage.rows[table.qualified_name] = result["written"]
    return result


def derive_stage(settings: Settings, layers: Layers, full: bool = False,
                 job=None) -> DeriveResult:
    """Every derived table, in the order of DERIVED_OWNERS (the summary reads the BMI table)."""
    bmi, summary = (derive_table(settings, layers, flow, full, job) for flow in DERIVED_OWNERS)
    return DeriveResult(bmi["changed_patients"], bmi["written"], bmi["deleted"],
                        summary["written"], summary["deleted"], full)


# Ledger rows that say what the refined and derived tables already hold.
_LEDGERS = ("meta.refined_batch", "meta.derive_watermark", "meta.terminology_pending")


def reset_from_raw(layers: Layers) -> None:
    """Empty the refined and derived layers and forget what was refined into them; raw, the run
    log, pseudonym identities and merge decisions stay."""
    for table in REFINED_TABLES:
        layers.refined.drop(table)
    for table in DERIVED_TABLES:
        layers.derived.drop(table)
    targets = sorted({target_of(layers.refined, layers.control),
                      target_of(layers.derived, layers.control)})
    with layers.control.connect() as conn:
        for ledger in _LEDGERS:
            conn.execute(f"DELETE FROM {ledger} WHERE target = ANY(%s)", (targets,))
    ensure_layers(layers.control, layers.refined, layers.derived)


# -- the run: storage opened once, the ledger kept, timings taken ----------------------------

def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


class PipelineRun:
    """One run on one profile's storage. Entering opens the storage (unless layers are given)
    and records the run as running in meta.run; leaving records succeeded or failed, with the
    counts, and closes what it opened. The constructor does no I/O.

        with PipelineRun(settings) as run:
            run.ingest(path); run.refine(); run.derive()
        summary = run.summary()
    """

    def __init__(self, settings: Settings, profile: str | None = None,
                 reporter: Reporter | None = None, layers: Layers | None = None,
                 job: str = "pipeline",
                 orchestrator: tuple[str, str, str] | None = None) -> None:
        """orchestrator: (namespace, job, run id) of the orchestrator run containing this one
        (a Prefect flow run), the parent of the run's lineage job."""
        self.settings = settings
        self.profile = profile
        self.reporter = reporter or SilentReporter()
        self.run_id = new_run_id()
        self.layers = layers
        self._owns_layers = layers is None
        self.ingested = IngestSummary()
        self.refined: RefineResult | None = None
        self.derived: DeriveResult | None = None
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()
        self._summary: dict | None = None
        self.audit = RunAudit(settings, self.run_id, profile)
        self.lineage = LineageRecorder(settings, self.run_id, job, orchestrator)

    def __enter__(self) -> PipelineRun:
        if self.layers is None:
            self.layers = open_layers(self.settings, self.profile)
        # Held while the run lives, so a killed run's row can be marked 'abandoned'.
        self._claim = claim_run(self.layers.control, self.run_id)
        self._record("running")
        self.lineage.begin(self.layers)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.lineage.end(exc)
            self._record("failed" if exc_type else "succeeded", self.counts() or None)
            self._push_metrics(exc_type)
            self.audit.finished(self, exc)
        finally:
            self._claim.close()
            if self._owns_layers:
                self.layers.close()

    def ingest(self, input_path: Path) -> IngestSummary:
        with self._timed("ingest"), self.audit.ingest(self.layers.raw), \
                self.lineage.job("ingest") as lineage:
            self.ingested = ingest(self.settings, self.layers, input_path, self.reporter)
            lineage.ingested(input_path, self.ingested.records)
        return self.ingested

    def refine(self) -> RefineResult:
        with self._timed("refine"), self.lineage.job("refine") as lineage:
            self.refined = refine_stage(self.settings, self.layers, self.run_id, self.reporter)
            lineage.refined(self.refined)
        return self.refined

    def derive(self, full: bool = False) -> DeriveResult:
        with self._timed("derive"), self.reporter.step("derive", None):
            self.derived = derive_stage(self.settings, self.layers, full, self.lineage.job)
        return self.derived

    def derive_table(self, flow: str, full: bool = False) -> dict:
        """One derived table by its owner flow (the Prefect owner flows call this)."""
        with self._timed("derive"), self.reporter.step(flow, None):
            return derive_table(self.settings, self.layers, flow, full, self.lineage.job)

    def reset_from_raw(self) -> None:
        self.audit.rebuild()
        reset_from_raw(self.layers)

    def counts(self) -> dict:
        if self.refined is None:
            return {}
        return {t: c.as_dict() for t, c in sorted(self.refined.counts.items())}

    def summary(self) -> dict:
        """A JSON-ready summary: this run's counts plus the current state of the tables (taken
        once, when the run ends)."""
        if self._summary is None:
            self._summary = self._summarise()
        return self._summary

    def _summarise(self) -> dict:
        layers, refined = self.layers, self.refined or RefineResult()
        tables = {t.qualified_name: layers.refined.count(t) for t in REFINED_TABLES}
        tables.update({t.qualified_name: layers.derived.count(t) for t in DERIVED_TABLES})
        latest = layers.derived.read(PATIENT_BMI_LATEST, ["weight_category"])
        categories = {row["values"]: row["counts"] for row in sorted(
            latest.column("weight_category").value_counts().to_pylist(),
            key=lambda r: r["values"])}
        bands = sorted(layers.derived.read(AGE_BAND_SUMMARY, [
            "age_band", "sex", "weight_category", "patients", "mean_bmi"]).to_pylist(),
            key=lambda r: (r["age_band"], r["sex"], r["weight_category"]))
        return {
            "run_id": self.run_id,
            "storage": describe(layers),
            "database_url": layers.control.url,
            "ingest": asdict(self.ingested),
            "counts": self.counts(),
            "quarantine_reasons": dict(refined.quarantine_reasons.most_common()),
            "filter_reasons": dict(refined.filter_reasons.most_common()),
            "promoted_orphans": refined.promoted_orphans,
            "persons_moved": refined.persons_moved,
            "terminology": refined.terminology,
            "derive": asdict(self.derived) if self.derived else {},
            "tables": tables,
            "storage_bytes": {
                "raw": layers.raw.storage_bytes(),
                "refined": sum(layers.refined.storage_bytes(t) for t in REFINED_TABLES),
                "derived": sum(layers.derived.storage_bytes(t) for t in DERIVED_TABLES)},
            "bmi_categories": categories,
            "age_bands": bands,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "lineage": self.lineage.summary(),
        }

    def _push_metrics(self, exc_type: type[BaseException] | None) -> None:
        """The run's metrics to the Pushgateway (docs/monitoring.md); never fails the run."""
        total = {"total": time.perf_counter() - self._started}
        if exc_type is None:
            summary = self.summary()
            push_run_metrics(summary | {"seconds": summary["seconds"] | total}, self.settings)
        else:
            push_run_metrics({"outcome": "failed", "error": exc_type.__name__, "seconds": total,
                              "storage": {"profile": self.layers.profile}}, self.settings)

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[stage] = self.seconds.get(stage, 0) + time.perf_counter() - start

    def _record(self, status: str, counts: dict | None = None) -> None:
        with self.layers.control.connect() as conn:
            if status == "running":  # in the ledger row's transaction: no run without its event
                self.audit.started(conn, self.layers.control.url)
            conn.execute("""
                INSERT INTO meta.run (run_id, started_at, status, counts)
                VALUES (%s, now(), %s, %s)
                ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status,
                  counts = EXCLUDED.counts, finished_at = now()""",
                         (self.run_id, status, json.dumps(counts) if counts else None))


def rebuild(settings: Settings, layers: Layers, reporter: Reporter | None = None
            ) -> tuple[RefineResult, DeriveResult]:
    """Refine every raw batch again into empty tables, then derive every person: the full
    re-run incremental runs are checked against, and the way back after a change of rules that
    must apply to old records too."""
    with PipelineRun(settings, reporter=reporter, layers=layers, job="rebuild") as pipeline_run:
        pipeline_run.reset_from_raw()
        refined = pipeline_run.refine()
        derived = pipeline_run.derive(full=True)
    return refined, derived


# Waits before each new attempt after a lost database connection: about a minute in all, the
# time a Patroni cluster takes to elect a new primary even when the old one hangs (ttl 20-30 s).
RETRY_DELAYS = (1, 2, 4, 8, 15, 30)
# A connection lost, a server starting or stopping, or a primary just demoted to a replica.
TRANSIENT = (BackendUnavailable, psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction)


def run(settings: Settings, input_path: Path, reporter: Reporter | None = None,
        profile: str | None = None) -> dict:
    """Run all three stages on the profile's storage and return the run summary. A storage
    connection lost on the way (a failover) runs it again from the start: every stage is
    idempotent (an ingested file is not ingested twice, refine and derive commit whole), so the
    end state is that of one run; the summary is the last attempt's. Storage that was never
    reached fails at once, as before: that is a configuration, not a failover."""
    reached = False
    for delay in RETRY_DELAYS:
        attempt = PipelineRun(settings, profile, reporter)
        try:
            return _run_once(attempt, input_path)
        except TRANSIENT as exc:
            reached = reached or attempt.layers is not None
            if not reached:
                raise
            log.warning("the run lost its storage (%s); running again in %d s",
                        type(exc).__name__, delay)
            time.sleep(delay)
    return _run_once(PipelineRun(settings, profile, reporter), input_path)


def _run_once(pipeline_run: PipelineRun, input_path: Path) -> dict:
    with pipeline_run:
        pipeline_run.ingest(input_path)
        pipeline_run.refine()
        pipeline_run.derive()
    return pipeline_run.summary()
