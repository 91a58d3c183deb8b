"""The lineage of one PipelineRun: a parent job for the run, one child job per stage."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from vitalflow.lineage.datasets import Dataset
from vitalflow.tables import (AGE_BAND_SUMMARY, OBSERVATION, OBSERVATION_PENDING, PATIENT,
                              PATIENT_BMI_LATEST, QUARANTINE, RAW_BATCH, RAW_RECORD)

if TYPE_CHECKING:
    from vitalflow.config import Settings
    from vitalflow.storage import Layers

log = logging.getLogger(__name__)

# The tables each job reads and writes.
JOBS = {
    "ingest": ((), (RAW_RECORD, RAW_BATCH)),
    "refine": ((RAW_RECORD, RAW_BATCH),
               (PATIENT, OBSERVATION, QUARANTINE, OBSERVATION_PENDING)),
    "derive_patient_bmi": ((PATIENT, OBSERVATION), (PATIENT_BMI_LATEST,)),
    "derive_age_band_summary": ((PATIENT_BMI_LATEST,), (AGE_BAND_SUMMARY,)),
}


class JobRun:
    """What a stage tells its job's COMPLETE event: rows per dataset and refine's outcomes."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}  # qualified table name -> rows written or read
        self.outcomes: dict | None = None
        self.files: list[str] = []  # input files (ingest)
        self.read: list[str] = []  # tables read, when not fixed by the job (export)
        self.written_files: list[str] = []  # output files (export)
        self.batches: list[str] = []  # raw batches read (refine)
        self.terminology: dict = {}

    def ingested(self, input_path: Path, records: int) -> None:
        self.files = [str(input_path.resolve())]
        self.rows[RAW_RECORD.qualified_name] = records

    def exported(self, table: str, out: Path, rows: int) -> None:
        self.read = [table]
        self.written_files = [str(out.resolve())]
        self.rows[table] = rows

    def refined(self, result) -> None:
        """Rows per outcome (refined, quarantined, filtered, duplicates, pending) per resource."""
        self.outcomes = {t: c.as_dict() for t, c in sorted(result.counts.items())}
        self.batches, self.terminology = list(result.batches), result.terminology
        total = {key: sum(c[key] for c in self.outcomes.values())
                 for key in ("read", "refined", "quarantined", "pending")}
        self.rows.update({RAW_RECORD.qualified_name: total["read"],
                          QUARANTINE.qualified_name: total["quarantined"],
                          OBSERVATION_PENDING.qualified_name: total["pending"]})
        for table, resource in ((PATIENT, "Patient"), (OBSERVATION, "Observation")):
            if resource in self.outcomes:
                self.rows[table.qualified_name] = self.outcomes[resource]["refined"]


class LineageRecorder:
    """Emits START and COMPLETE/FAIL/ABORT for the run (job `parent`) and each stage job. Does
    nothing in mode file; an event that cannot be built or kept is logged, never raised: lineage
    never fails a run. Constructor does no I/O."""

    def __init__(self, settings: Settings, run_id: str, parent: str | None = "pipeline",
                 orchestrator: tuple[str, str, str] | None = None) -> None:
        self.settings = settings
        self.run_id = run_id
        self.parent = parent
        # (namespace, job, run id) of the orchestrator's run that contains this one, given by
        # the caller (a Prefect flow) or read from the deployment runner's environment.
        self.orchestrator = orchestrator
        self.enabled = settings.lineage.emits_events
        self.sink = None
        self.failures = 0
        self.seconds = 0.0  # spent on lineage: its overhead, measured inside every run
        self._datasets: dict = {}
        self._layers = None

    def open(self, layers: Layers) -> None:
        """Ready to emit (mode allowing); a recorder without parent emits only its jobs."""
        if not self.enabled:
            return
        from vitalflow.lineage.datasets import layer_datasets
        from vitalflow.lineage.sink import EventSink

        self.sink = EventSink(self.settings.lineage, lineage_folder(self.settings),
                              http_url(self.settings))
        self._layers = layers
        self._datasets = layer_datasets(layers)

    def begin(self, layers: Layers) -> None:
        self.open(layers)
        if self.sink is not None:
            self._emit("START", self.parent, parent=self.orchestrator or prefect_parent())

    def end(self, exc: BaseException | None) -> None:
        if self.sink is not None:
            self._emit(_final_state(exc), self.parent,
                       parent=self.orchestrator or prefect_parent(), error=exc)

    @contextmanager
    def job(self, name: str) -> Iterator[JobRun]:
        """START, then COMPLETE with the job's datasets and counts, or FAIL/ABORT with the error."""
        job_run = JobRun()
        if self.sink is None:
            yield job_run
            return
        from vitalflow.lineage.events import run_uuid

        parent = ((self.settings.lineage.namespace, self.parent,
                   run_uuid(self.run_id, self.parent)) if self.parent else None)
        self._emit("START", name, parent=parent)
        try:
            yield job_run
        except BaseException as exc:
            self._emit(_final_state(exc), name, parent=parent, error=exc)
            raise
        inputs, outputs = JOBS.get(name, ((), ()))
        self._emit("COMPLETE", name, parent=parent,
                   inputs=_files(job_run.files) + [self._dataset(t, job_run) for t in inputs]
                   + [self._dataset(self._datasets[t].table, job_run) for t in job_run.read],
                   outputs=[self._dataset(t, job_run) for t in outputs]
                   + _files(job_run.written_files),
                   outcomes=job_run.outcomes)
        if self.settings.lineage.mode == "hybrid":
            self._keep(name, job_run)

    def summary(self) -> dict:
        counts = dict(self.sink.counts) if self.sink else {}
        return {"mode": self.settings.lineage.mode, **counts,
                **({"not_emitted": self.failures} if self.failures else {}),
                **({"seconds": round(self.seconds, 4)} if self.sink else {})}

    def _dataset(self, table, job_run: JobRun):
        return self._datasets[table.qualified_name], job_run.rows.get(table.qualified_name)

    def _emit(self, state: str, job: str, **kwargs) -> None:
        """Build and keep one event; lineage never fails a run, so failures are counted."""
        from vitalflow.lineage.events import run_event

        start = time.perf_counter()
        try:
            self.sink.emit(run_event(state, self.settings.lineage.namespace, job, self.run_id,
                                     datasets=self._datasets, **kwargs))
        except Exception as exc:
            self.failures += 1
            log.warning("lineage: %s event of job %s not emitted: %s", state, job,
                        type(exc).__name__)
        finally:
            self.seconds += time.perf_counter() - start


    def _keep(self, name: str, job_run: JobRun) -> None:
        """Hybrid mode: the job's rows in meta.lineage."""
        from vitalflow.lineage.table import record

        start = time.perf_counter()
        try:
            outputs = JOBS.get(name, ((), ()))[1]
            written = {t.qualified_name: job_run.rows[t.qualified_name] for t in outputs
                       if t.qualified_name in job_run.rows}
            record(self.settings, self._layers, self.run_id, name, written, job_run.batches,
                   job_run.terminology)
        except Exception as exc:
            self.failures += 1
            log.warning("lineage: meta.lineage rows of job %s not written: %s", name,
                        type(exc).__name__)
        finally:
            self.seconds += time.perf_counter() - start


def prefect_parent() -> tuple[str, str, str] | None:
    """The Prefect flow run this process runs for, as (namespace, job, run id): the runner sets
    these variables for deployment runs (vitalflow itself never imports Prefect)."""
    run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if not run_id:
        return None
    return "prefect", os.environ.get("PREFECT__DEPLOYMENT_NAME") or "flow-run", run_id


def _files(paths: list[str]) -> list[tuple[Dataset, None]]:
    return [(Dataset("file", path, None), None) for path in paths]


def _final_state(exc: BaseException | None) -> str:
    if exc is None:
        return "COMPLETE"
    return "ABORT" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAIL"


def lineage_folder(settings: Settings):
    return settings.paths.root / "lineage"


def http_url(settings: Settings) -> str:
    """The configured endpoint, or the local Marquez's API when it runs."""
    if settings.lineage.url or settings.lineage.transport != "http":
        return settings.lineage.url
    from vitalflow.lineage.marquez import Marquez

    return Marquez(settings).api_url()


def export_lineage(settings: Settings, layers: Layers):
    """The export job's events (no pipeline run around it): a context manager like job()."""
    from vitalflow.pipeline import new_run_id

    recorder = LineageRecorder(settings, new_run_id(), parent=None)
    recorder.open(layers)
    return recorder.job("export")
