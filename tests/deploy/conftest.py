"""Helpers of the deployment tests: deploying prefect.yaml to a server, waiting with deadlines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
POOL = "vitalflow-process"


def prefect_env(api_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "VITALFLOW_PROJECT_DIR": str(ROOT), **extra}


def deploy_all(env: dict[str, str], timeout: float = 300) -> None:
    """What `make serve` does: the process work pool, then every deployment of prefect.yaml."""
    for command in ([PREFECT, "--no-prompt", "work-pool", "create", POOL, "--type", "process",
                     "--overwrite"],
                    [PREFECT, "--no-prompt", "deploy", "--all", "--pool", POOL]):
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def wait_for(what: str, probe: Callable, timeout: float = 120, every: float = 0.5):
    """probe()'s first truthy value, polled until the deadline (generous: a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
