"""Partitioned refine and derive on a Prefect process work pool: a planner flow submits one run
of the partition deployment per partition and submits it again while its partition is neither
done nor held (its process died); `python -m flows.partitions deploy|run` for the drill."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import psycopg
from prefect import flow, get_client
from prefect.deployments import run_deployment

from vitalflow.config import PROJECT_ROOT
from vitalflow.partitions import claims
from vitalflow.partitions.run import run_partitioned, work
from vitalflow.partitions.worker import load_settings_file
from vitalflow.pipeline import PipelineRun
from vitalflow.storage import open_layers

PARTITION_FLOW = "vitalflow-partition"
DEPLOYMENT = "partitions"


@flow(name=PARTITION_FLOW)
def partition_flow(settings_file: str, run_id: str, stage: str, part: int) -> int:
    """One partition of a stage, if nobody holds or has done it; 1 when done here."""
    settings = load_settings_file(Path(settings_file))
    layers = open_layers(settings)
    try:
        return work(settings, layers, run_id, stage, part)
    finally:
        layers.close()


class DeploymentRuns:
    """execute(run_id, stage) for run_partitioned: a deployment run per partition, again when
    the last one ended (crashed: its process was killed) and the partition is not done."""

    def __init__(self, deployment: str, settings_file: str, control_url: str,
                 timeout: float = 3600, resubmits: int = 3) -> None:
        self.deployment = deployment
        self.settings_file = settings_file
        self.control_url = control_url
        self.timeout = timeout
        self.resubmits = resubmits
        self.submitted: dict[tuple[str, int], list] = {}  # (stage, part) -> flow run ids

    def __call__(self, run_id: str, stage: str) -> None:
        deadline = time.monotonic() + self.timeout
        with get_client(sync_client=True) as client, \
                psycopg.connect(self.control_url, autocommit=True) as conn:
            while left := [s["part"] for s in claims.states(conn, run_id, stage)
                           if s["state"] != "done"]:
                for part in left:
                    runs = self.submitted.setdefault((stage, part), [])
                    if runs and not client.read_flow_run(runs[-1]).state.is_final():
                        continue
                    if len(runs) > self.resubmits:
                        raise RuntimeError(f"{stage} partition {part} failed {len(runs)} times")
                    runs.append(run_deployment(
                        self.deployment, timeout=0, flow_run_name=f"{stage}-{part}",
                        parameters={"settings_file": self.settings_file, "run_id": run_id,
                                    "stage": stage, "part": part}).id)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{stage} partitions {left} not done in time")
                time.sleep(1)

    def resubmitted(self) -> int:
        return sum(len(runs) - 1 for runs in self.submitted.values())


@flow(name="vitalflow-partitioned", log_prints=True)
def partitioned_pipeline(settings_file: str, input_path: str | None = None, parts: int = 4,
                         deployment: str = f"{PARTITION_FLOW}/{DEPLOYMENT}") -> dict:
    """Ingest, then refine and derive in parts partitions done by the pool's workers."""
    settings = load_settings_file(Path(settings_file))
    with PipelineRun(settings, job="partitioned") as run:
        if input_path:
            run.ingest(Path(input_path))
        runs = DeploymentRuns(deployment, settings_file, run.layers.control.url)
        run_partitioned(run, parts, runs)
    summary = run.summary()
    print(f"run {run.run_id}: {parts} partitions, {runs.resubmitted()} submitted again")
    return {"run_id": run.run_id, "counts": summary["counts"], "seconds": summary["seconds"],
            "resubmitted": runs.resubmitted()}


def deploy(pool: str) -> str:
    """The partition deployment on a process pool, run from this checkout."""
    source = partition_flow.from_source(str(PROJECT_ROOT), "flows/partitions.py:partition_flow")
    source.deploy(DEPLOYMENT, work_pool_name=pool, build=False, push=False,
                  print_next_steps=False, ignore_warnings=True)
    return f"{PARTITION_FLOW}/{DEPLOYMENT}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.partitions")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("deploy").add_argument("--pool", required=True)
    run = commands.add_parser("run")
    run.add_argument("--settings", required=True)
    run.add_argument("--input")
    run.add_argument("--parts", type=int, default=4)
    run.add_argument("--out", required=True, help="the run's summary as JSON")
    args = parser.parse_args()
    if args.command == "deploy":
        print(deploy(args.pool))
        return
    result = partitioned_pipeline(args.settings, args.input, args.parts)
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
