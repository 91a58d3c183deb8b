"""Serves the pipeline as a Prefect deployment with a cron schedule (see `make serve`)."""

from __future__ import annotations

import os

from flows.pipeline import vitalflow_pipeline
from vitalflow.config import load_settings
from vitalflow.monitoring.exposition import serve_metrics


def main() -> None:
    settings = load_settings()
    input_path = os.environ.get("VITALFLOW_INPUT", str(settings.paths.root / "sample"))
    serve_metrics(settings.monitoring.worker_metrics_port)  # monitoring: the worker's /metrics
    vitalflow_pipeline.serve(
        name="vitalflow-nightly",
        cron=os.environ.get("VITALFLOW_CRON", "0 2 * * *"),
        parameters={"input_path": input_path},
        description="Ingest new files, refine, update derived tables.",
    )


if __name__ == "__main__":
    main()
