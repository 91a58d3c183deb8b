"""The vitalflow pipeline as Prefect flows: ingest -> refine -> one owner flow per derived table."""

from __future__ import annotations

from pathlib import Path

import psycopg
from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from storage_backends.base import BackendUnavailable
from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.derive import BMI_FLOW, SUMMARY_FLOW
from vitalflow.storage import open_layers
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


_retrying = {"retries": 3, "retry_delay_seconds": exponential_backoff(backoff_factor=2),
             "retry_jitter_factor": 0.5, "retry_condition_fn": is_transient,
             "cache_policy": NONE}


ingest_task = task(pipeline.ingest, name="ingest", **_retrying)
refine_task = task(pipeline.refine_stage, name="refine", **_retrying)
open_layers_task = task(open_layers, name="open_storage", **_retrying)
patient_bmi_task = task(pipeline.patient_bmi_stage, name="derive_patient_bmi", **_retrying)
age_band_summary_task = task(pipeline.age_band_summary_stage, name="derive_age_band_summary",
                             **_retrying)


@flow(name=BMI_FLOW)
def derive_patient_bmi_flow(profile: str | None = None, full: bool = False) -> dict:
    """Owner of derived.patient_bmi_latest."""
    settings = load_settings()
    return patient_bmi_task(settings, open_layers_task(settings, profile), full)


@flow(name=SUMMARY_FLOW)
def derive_age_band_summary_flow(profile: str | None = None) -> dict:
    """Owner of derived.age_band_summary."""
    settings = load_settings()
    return age_band_summary_task(settings, open_layers_task(settings, profile))


@flow(name="vitalflow-pipeline", log_prints=True)
def vitalflow_pipeline(input_path: str, profile: str | None = None,
                       full_derive: bool = False) -> dict:
    """Ingest the files under input_path, refine new batches, update the derived tables."""
    settings = load_settings()
    layers = open_layers_task(settings, profile)
    run_id = pipeline.new_run_id()
    pipeline.record_run(layers, run_id, "running")
    ingested = ingest_task(settings, layers, Path(input_path))
    refined = refine_task(settings, layers, run_id)
    bmi = derive_patient_bmi_flow(layers.profile, full_derive)
    summary = derive_age_band_summary_flow(layers.profile)
    counts = {t: c.as_dict() for t, c in refined.counts.items()}
    pipeline.record_run(layers, run_id, "succeeded", counts)
    read = sum(c["read"] for c in counts.values())
    print(f"run {run_id} ({layers.profile}): {ingested.new_batches} new batches, {read} "
          f"records read; derived {bmi['written']} BMI rows, {summary['written']} summary rows")
    return {"run_id": run_id, "counts": counts, "patient_bmi_latest": bmi,
            "age_band_summary": summary}
