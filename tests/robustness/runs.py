"""Helpers of the robustness tests: `vitalflow` in subprocesses on a private project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vitalflow.services import free_port


def project_env(home: Path) -> dict[str, str]:
    """A project of its own: its folder, the embedded services on a free port."""
    env = {**os.environ, "VITALFLOW__PATHS__HOME": str(home),
           "VITALFLOW__DATABASE__EMBEDDED_PORT": str(free_port())}
    env.pop("VITALFLOW__DATABASE__URL", None)
    return env


def start(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vitalflow.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, dict | None, str]:
    """Exit code, the --json summary (None without one) and stderr."""
    out, err = process.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return process.returncode, summary, err


def vitalflow(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vitalflow.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def lines_in(folder: Path) -> int:
    """Records of an NDJSON input folder (files named like the generator's)."""
    return sum(sum(1 for line in path.open() if line.strip())
               for path in folder.glob("*.ndjson"))


def accounted(summary: dict) -> int:
    """Records this run read, after checking each type adds up."""
    total = 0
    for counts in summary["counts"].values():
        assert counts["read"] == sum(counts[k] for k in (
            "refined", "quarantined", "filtered", "duplicates", "pending")), counts
        total += counts["read"]
    return total
