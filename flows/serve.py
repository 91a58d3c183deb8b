"""Serves the pipeline as a Prefect deployment with a cron schedule (see `make serve`)."""

from __future__ import annotations

import os

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.pipeline import vitalflow_pipeline
from vitalflow.config import load_settings
from vitalflow.monitoring.exposition import serve_metrics


def deployment() -> RunnerDeployment:
    """The nightly deployment: schedule from VITALFLOW_CRON, input from VITALFLOW_INPUT."""
    settings = load_settings()
    input_path = os.environ.get("VITALFLOW_INPUT", str(settings.paths.root / "sample"))
    return vitalflow_pipeline.to_deployment(
        name="vitalflow-nightly",
        cron=os.environ.get("VITALFLOW_CRON", "0 2 * * *"),
        parameters={"input_path": input_path},
        description="Ingest new files, refine, update derived tables.",
    )


def main() -> None:
    serve_metrics(load_settings().monitoring.worker_metrics_port)  # the worker's /metrics
    serve(deployment())


if __name__ == "__main__":
    main()
