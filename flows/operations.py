"""Operations as flows, so teams start them from the Prefect UI: rebuild, raw maintenance,
drills and benchmarks (the last three run the `vitalflow` command line: one implementation)."""

from __future__ import annotations

import subprocess
import sys

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.publish import guard_refine
from vitalflow.config import load_settings
from vitalflow.pipeline import rebuild
from vitalflow.storage import open_layers

_TAIL = 60  # lines of a command's output kept in its artifact


def _vitalflow(kind: str, *args: str) -> str:
    """Run `vitalflow ARGS`, log and publish its output; a failing command fails the flow."""
    command = [sys.executable, "-m", "vitalflow.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    output = (done.stdout + done.stderr).strip()
    logger = get_run_logger()
    logger.info("vitalflow %s exited with %s\n%s", " ".join(args), done.returncode, output)
    tail = "\n".join(output.splitlines()[-_TAIL:])
    create_markdown_artifact(f"# vitalflow {' '.join(args)}\n\nexit code {done.returncode}\n\n"
                             f"```text\n{tail}\n```\n", key=f"vitalflow-{kind}")
    if done.returncode:
        raise RuntimeError(f"vitalflow {' '.join(args)} failed with exit code {done.returncode}")
    return output


@flow(name="vitalflow-rebuild", log_prints=True)
def rebuild_flow(profile: str | None = None) -> dict:
    """Empty refined and derived, refine every raw batch again and derive every person.

    Args:
        profile: Storage profile; empty for the configured default.
    """
    settings = load_settings()
    layers = open_layers(settings, profile or None)
    try:
        with guard_refine(layers.profile):
            refined, derived = rebuild(settings, layers)
    finally:
        layers.close()
    counts = {resource: c.as_dict() for resource, c in sorted(refined.counts.items())}
    print(f"rebuilt {layers.profile}: {counts}")
    return {"counts": counts, "bmi_rows_written": derived.bmi_rows_written}


@flow(name="vitalflow-raw-maintenance")
def raw_maintenance_flow(older_than_days: float = 7, compact: bool = True,
                         profile: str = "lakehouse") -> str:
    """Expire old snapshots of the raw layer on Iceberg and compact small files.

    Args:
        older_than_days: Expire snapshots older than this many days (the current one stays).
        compact: Merge small data files.
        profile: A storage profile whose raw layer is on Iceberg.
    """
    return _vitalflow("raw-maintenance", "raw", "maintain", "--older-than-days",
                      str(older_than_days), "--compact" if compact else "--no-compact",
                      "--profile", profile)


@flow(name="vitalflow-drill")
def drill_flow(name: str = "all", quick: bool = True) -> str:
    """Run a failover, replica or chaos drill (`vitalflow drill`).

    Args:
        name: Drill name (see `vitalflow drill --help`) or all.
        quick: The short version: small data, about a minute per drill.
    """
    return _vitalflow("drill", "drill", name, *(["--quick"] if quick else []), "--json")


@flow(name="vitalflow-bench")
def bench_flow(sizes: str = "10k", profiles: str = "postgres,lakehouse,clickhouse,mixed",
               quick: bool = True) -> str:
    """Benchmark the storage profiles (`vitalflow bench`, benchmarks/README.md).

    Args:
        sizes: Comma-separated input sizes in observations, e.g. 10k,100k,1m.
        profiles: Comma-separated storage profiles.
        quick: One floor attempt, few query runs and a short concurrent-reader phase.
    """
    return _vitalflow("bench", "bench", "--sizes", sizes, "--profiles", profiles,
                      *(["--quick"] if quick else []))
