"""The vitalflow pipeline as Prefect flows: ingest -> refine -> one owner flow per derived table."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

import psycopg
from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from flows.publish import guard_refine, publish_summary, settle, table_updated
from storage_backends.base import BackendUnavailable
from vitalflow.config import load_settings
from vitalflow.derive.sql import BMI_FLOW, SUMMARY_FLOW
from vitalflow.pipeline import PipelineRun
from vitalflow.terminology.client import TerminologyUnavailable

# The CLI's progress display, for a run it starts in-process (not a flow parameter: parameters
# are stored in Prefect as JSON).
reporter: ContextVar = ContextVar("vitalflow_reporter", default=None)

TRANSIENT = (BackendUnavailable, TerminologyUnavailable, psycopg.OperationalError,
             ConnectionError, TimeoutError)


def is_transient(task, task_run, state) -> bool:
    """Retry connection losses and timeouts; bad data fails at once."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except Exception:  # noqa: BLE001 - anything else is not worth retrying
        return False
    return False


def flow_run_parent() -> tuple[str, str, str] | None:
    """This flow run as the lineage parent of the PipelineRun it opens."""
    from prefect.runtime import flow_run

    return ("prefect", flow_run.flow_name, flow_run.id) if flow_run.id else None


def pipeline_run(profile: str | None, **kwargs) -> PipelineRun:
    return PipelineRun(load_settings(), profile or None, orchestrator=flow_run_parent(), **kwargs)


_retrying = {"retries": 3, "retry_delay_seconds": exponential_backoff(backoff_factor=2),
             "retry_jitter_factor": 0.5, "retry_condition_fn": is_transient,
             "cache_policy": NONE}


ingest_task = task(PipelineRun.ingest, name="ingest", **_retrying)


@task(name="refine", **_retrying)
def refine_task(run: PipelineRun):
    """Refine under the profile's refine guard, then say which refined tables changed."""
    with guard_refine(run.layers.profile):
        result = run.refine()
    changed = sum(c.refined + c.quarantined for c in result.counts.values())
    if changed or result.persons_moved:
        table_updated("refine", run.layers.profile)
    return result


@task(name=BMI_FLOW, **_retrying)
def patient_bmi_task(run: PipelineRun, full: bool = False) -> dict:
    result = run.derive_table(BMI_FLOW, full)
    if result["written"] or result["deleted"]:
        table_updated(BMI_FLOW, run.layers.profile)
    return result


@task(name=SUMMARY_FLOW, **_retrying)
def age_band_summary_task(run: PipelineRun) -> dict:
    result = run.derive_table(SUMMARY_FLOW)
    if result["written"] or result["deleted"]:
        table_updated(SUMMARY_FLOW, run.layers.profile)
    return result


@flow(name=BMI_FLOW)
def derive_patient_bmi_flow(profile: str | None = None, full: bool = False,
                            changed_at: str | None = None, debounce_seconds: float = 0) -> dict:
    """Owner of derived.patient_bmi_latest: bring it up to date with refined.

    Args:
        profile: Storage profile (postgres, lakehouse, clickhouse, mixed or a configured one);
            empty for the configured default.
        full: Recompute every person instead of those changed since the last run.
        changed_at: When the input changed (the triggering event's time); empty for now.
        debounce_seconds: Wait until this long after changed_at before deriving, so the
            changes whose events the trigger's debounce window swallowed are included.
    """
    settle(changed_at, debounce_seconds)
    with pipeline_run(profile) as run:
        return patient_bmi_task(run, full)


@flow(name=SUMMARY_FLOW)
def derive_age_band_summary_flow(profile: str | None = None, changed_at: str | None = None,
                                 debounce_seconds: float = 0) -> dict:
    """Owner of derived.age_band_summary: recompute it from derived.patient_bmi_latest.

    Args:
        profile: Storage profile; empty for the configured default.
        changed_at: When the input changed (the triggering event's time); empty for now.
        debounce_seconds: Wait until this long after changed_at before deriving, so the
            changes whose events the trigger's debounce window swallowed are included.
    """
    settle(changed_at, debounce_seconds)
    with pipeline_run(profile) as run:
        return age_band_summary_task(run)


@flow(name="vitalflow-pipeline", log_prints=True)
def vitalflow_pipeline(input_path: str, profile: str | None = None, full_derive: bool = False,
                       derive: bool = True) -> dict:
    """Ingest the files under input_path, refine new batches, update the derived tables: one
    PipelineRun (storage opened once, the run recorded as running, succeeded or failed). The
    run summary is published as a Markdown artifact and returned.

    Args:
        input_path: Folder of FHIR NDJSON / Bundle files, or one file.
        profile: Storage profile (postgres, lakehouse, clickhouse, mixed or a configured one);
            empty for the configured default.
        full_derive: Recompute every person's derived rows, not only the changed ones.
        derive: Update the derived tables in this run; off for runs started by a landed file,
            whose derived tables follow through the owner flows' triggers.
    """
    with pipeline_run(profile, reporter=reporter.get()) as run:
        ingested = ingest_task(run, Path(input_path))
        refine_task(run)
        bmi = patient_bmi_task(run, full_derive) if derive else {"written": 0, "deleted": 0}
        summary = age_band_summary_task(run) if derive else {"written": 0, "deleted": 0}
    counts = run.counts()
    read = sum(c["read"] for c in counts.values())
    print(f"run {run.run_id} ({run.layers.profile}): {ingested.new_batches} new batches, {read} "
          f"records read; derived {bmi['written']} BMI rows, {summary['written']} summary rows")
    result = run.summary()
    publish_summary(result)
    return {**result, "patient_bmi_latest": bmi, "age_band_summary": summary}


def run_in_process(input_path: Path, progress, profile: str | None) -> dict:
    """The CLI's `vitalflow run` as this flow, with the CLI's progress display."""
    token = reporter.set(progress)
    try:
        return vitalflow_pipeline(str(input_path), profile)
    finally:
        reporter.reset(token)
