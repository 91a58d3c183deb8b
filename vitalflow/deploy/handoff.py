"""`vitalflow run` goes through the Prefect flow when a Prefect API is configured, so CLI runs
show in the UI with the same flow and task names and publish their summary artifact."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from vitalflow import pipeline
from vitalflow.config import Settings
from vitalflow.progress import Reporter


def prefect_api() -> str | None:
    """PREFECT_API_URL, unless VITALFLOW_PREFECT=off asks for a run without Prefect. Without
    an API URL a flow would start a temporary server per run: the CLI runs directly then."""
    if os.environ.get("VITALFLOW_PREFECT", "").lower() in ("off", "0", "false", "no"):
        return None
    return os.environ.get("PREFECT_API_URL") or None


def run_pipeline(settings: Settings, source: Path, reporter: Reporter,
                 profile: str | None) -> dict:
    """The run summary of ingest -> refine -> derive on source, as a flow run when a Prefect
    API is configured (the flow loads the same settings itself), else in this process."""
    if prefect_api():
        flows = importlib.import_module("flows.pipeline")  # the wiring layer, only here
        return flows.run_in_process(source, reporter, profile)
    return pipeline.run(settings, source, reporter, profile)
