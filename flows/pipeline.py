"""The vitalflow pipeline as Prefect flows: ingest -> refine -> one owner flow per derived table."""

from __future__ import annotations

from pathlib import Path

import psycopg
from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from storage_backends.base import BackendUnavailable
from storage_backends.postgres import PostgresBackend
from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.derive import BMI_FLOW, SUMMARY_FLOW, derive_age_band_summary, derive_patient_bmi

TRANSIENT = (BackendUnavailable, psycopg.OperationalError, ConnectionError, TimeoutError)


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
open_store_task = task(pipeline.open_store, name="open_store", **_retrying)
patient_bmi_task = task(derive_patient_bmi, name="derive_patient_bmi", **_retrying)
age_band_summary_task = task(derive_age_band_summary, name="derive_age_band_summary",
                             **_retrying)


@flow(name=BMI_FLOW)
def derive_patient_bmi_flow(database_url: str, full: bool = False) -> dict:
    """Owner of derived.patient_bmi_latest."""
    return patient_bmi_task(PostgresBackend(database_url), load_settings().derive, full)


@flow(name=SUMMARY_FLOW)
def derive_age_band_summary_flow(database_url: str) -> dict:
    """Owner of derived.age_band_summary."""
    return age_band_summary_task(PostgresBackend(database_url), load_settings().derive)


@flow(name="vitalflow-pipeline", log_prints=True)
def vitalflow_pipeline(input_path: str, full_derive: bool = False) -> dict:
    """Ingest the files under input_path, refine new batches, update the derived tables."""
    settings = load_settings()
    store = open_store_task(settings)
    run_id = pipeline.new_run_id()
    pipeline.record_run(store, run_id, "running")
    ingested = ingest_task(settings, Path(input_path))
    refined = refine_task(settings, store, run_id)
    bmi = derive_patient_bmi_flow(store.url, full_derive)
    summary = derive_age_band_summary_flow(store.url)
    counts = {t: c.as_dict() for t, c in refined.counts.items()}
    pipeline.record_run(store, run_id, "succeeded", counts)
    read = sum(c["read"] for c in counts.values())
    print(f"run {run_id}: {ingested.new_batches} new batches, {read} "
          f"records read; derived {bmi['written']} BMI rows, {summary['written']} summary rows")
    return {"run_id": run_id, "counts": counts, "patient_bmi_latest": bmi,
            "age_band_summary": summary}
