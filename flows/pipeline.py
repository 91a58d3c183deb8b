"""The vitalflow pipeline as Prefect flows: ingest -> refine -> one owner flow per derived table."""

from __future__ import annotations

from pathlib import Path

import psycopg
from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from storage_backends.base import BackendUnavailable
from vitalflow.config import load_settings
from vitalflow.derive.sql import BMI_FLOW, SUMMARY_FLOW
from vitalflow.pipeline import PipelineRun
from vitalflow.terminology.client import TerminologyUnavailable

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


def pipeline_run(profile: str | None) -> PipelineRun:
    return PipelineRun(load_settings(), profile, orchestrator=flow_run_parent())


_retrying = {"retries": 3, "retry_delay_seconds": exponential_backoff(backoff_factor=2),
             "retry_jitter_factor": 0.5, "retry_condition_fn": is_transient,
             "cache_policy": NONE}


ingest_task = task(PipelineRun.ingest, name="ingest", **_retrying)
refine_task = task(PipelineRun.refine, name="refine", **_retrying)


@task(name=BMI_FLOW, **_retrying)
def patient_bmi_task(run: PipelineRun, full: bool = False) -> dict:
    return run.derive_table(BMI_FLOW, full)


@task(name=SUMMARY_FLOW, **_retrying)
def age_band_summary_task(run: PipelineRun) -> dict:
    return run.derive_table(SUMMARY_FLOW)


@flow(name=BMI_FLOW)
def derive_patient_bmi_flow(profile: str | None = None, full: bool = False) -> dict:
    """Owner of derived.patient_bmi_latest."""
    with pipeline_run(profile) as run:
        return patient_bmi_task(run, full)


@flow(name=SUMMARY_FLOW)
def derive_age_band_summary_flow(profile: str | None = None) -> dict:
    """Owner of derived.age_band_summary."""
    with pipeline_run(profile) as run:
        return age_band_summary_task(run)


@flow(name="vitalflow-pipeline", log_prints=True)
def vitalflow_pipeline(input_path: str, profile: str | None = None,
                       full_derive: bool = False) -> dict:
    """Ingest the files under input_path, refine new batches, update the derived tables: one
    PipelineRun (storage opened once, the run recorded as running, succeeded or failed)."""
    with pipeline_run(profile) as run:
        ingested = ingest_task(run, Path(input_path))
        refine_task(run)
        bmi = patient_bmi_task(run, full_derive)
        summary = age_band_summary_task(run)
    counts = run.counts()
    read = sum(c["read"] for c in counts.values())
    print(f"run {run.run_id} ({run.layers.profile}): {ingested.new_batches} new batches, {read} "
          f"records read; derived {bmi['written']} BMI rows, {summary['written']} summary rows")
    return {"run_id": run.run_id, "counts": counts, "patient_bmi_latest": bmi,
            "age_band_summary": summary}
