"""OpenLineage run events built with the official client's event and facet classes."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import version

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset, data_quality_metrics_input_dataset, error_message_run,
    output_statistics_output_dataset, parent_run, schema_dataset, source_code_location_job)
from openlineage.client.serde import Serde

from vitalflow.config import PROJECT_ROOT
from vitalflow.lineage.datasets import Dataset, column_lineage

PRODUCER = "https://github.com/vitalflow/vitalflow/tree/main/vitalflow/lineage"
STATES = {"START": RunState.START, "COMPLETE": RunState.COMPLETE, "FAIL": RunState.FAIL,
          "ABORT": RunState.ABORT}


def run_uuid(run_id: str, job: str) -> str:
    """A stable UUID per (pipeline run, job): OpenLineage run ids are UUIDs, ours are not."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"vitalflow:{run_id}:{job}"))


@cache
def code_version() -> str:
    """vitalflow's version plus the git commit of the checkout it runs from, when there is one."""
    try:
        commit = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12",
                                 "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version('vitalflow')}+{commit}" if commit else version("vitalflow")


def _source_code() -> source_code_location_job.SourceCodeLocationJobFacet:
    commit = code_version().partition("+")[2]
    return source_code_location_job.SourceCodeLocationJobFacet(
        type="git", url=PROJECT_ROOT.resolve().as_uri(), path="vitalflow",
        version=commit or code_version())


def _input(dataset: Dataset, rows: int | None) -> InputDataset:
    input_facets = ({"dataQualityMetrics": data_quality_metrics_input_dataset.
                     DataQualityMetricsInputDatasetFacet(rowCount=rows, columnMetrics={})}
                    if rows is not None else {})
    facets = {"schema": _schema(dataset)} if dataset.table else {}
    return InputDataset(namespace=dataset.namespace, name=dataset.name, facets=facets,
                        inputFacets=input_facets)


def _output(dataset: Dataset, datasets: dict[str, Dataset], rows: int | None) -> OutputDataset:
    facets = {"schema": _schema(dataset)} if dataset.table else {}
    fields = column_lineage(dataset.table, datasets)
    if fields:
        facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(fields={
            column: column_lineage_dataset.Fields(
                inputFields=[column_lineage_dataset.InputField(**source, transformations=[
                    column_lineage_dataset.Transformation(type="DIRECT",
                                                          subtype="TRANSFORMATION")])
                    for source in sources])
            for column, sources in fields.items()})
    output_facets = ({"outputStatistics": output_statistics_output_dataset.
                      OutputStatisticsOutputDatasetFacet(rowCount=rows)}
                     if rows is not None else {})
    return OutputDataset(namespace=dataset.namespace, name=dataset.name, facets=facets,
                         outputFacets=output_facets)


def _schema(dataset: Dataset) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(fields=[
        schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type,
                                                description=c.description)
        for c in dataset.table.columns])


def run_event(state: str, namespace: str, job: str, run_id: str, *,
              parent: tuple[str, str, str] | None = None,
              inputs: list[tuple[Dataset, int | None]] | None = None,
              outputs: list[tuple[Dataset, int | None]] | None = None,
              datasets: dict[str, Dataset] | None = None,
              error: BaseException | None = None, outcomes: dict | None = None) -> dict:
    """One event as a JSON-ready dict. parent is (namespace, job name, run UUID); inputs and
    outputs pair datasets with their row counts (None: not counted)."""
    facets: dict = {}
    if parent is not None:
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent[2]),
            job=parent_run.Job(namespace=parent[0], name=parent[1]))
    if error is not None:
        # The exception's type and message only: the stack trace could quote record values.
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=f"{type(error).__name__}: {error}"[:2000], programmingLanguage="python")
    event = RunEvent(
        eventType=STATES[state], eventTime=datetime.now(UTC).isoformat(), producer=PRODUCER,
        run=Run(runId=run_uuid(run_id, job), facets=facets),
        job=Job(namespace=namespace, name=job, facets={"sourceCodeLocation": _source_code()}),
        inputs=[_input(d, rows) for d, rows in inputs or ()],
        outputs=[_output(d, datasets or {}, rows) for d, rows in outputs or ()])
    body = Serde.to_dict(event)
    if outcomes:
        body["run"]["facets"]["vitalflow_outcomes"] = {
            "_producer": PRODUCER, "_schemaURL": f"{PRODUCER}/outcomes.json",
            "pipelineRunId": run_id, "codeVersion": code_version(), "resources": outcomes}
    return body
