"""Runs drills by name inside a teardown stack and keeps their results as JSON."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
from pathlib import Path

from vitalflow.drills import DRILLS
from vitalflow.drills.base import DrillOptions, DrillResult, Teardown, private_dir

LATEST = "drills-latest.json"


def run_drill(name: str, options: DrillOptions) -> DrillResult:
    """One drill; everything it started is stopped when it returns, fails or is interrupted."""
    module = importlib.import_module(f"vitalflow.drills.{DRILLS[name][0]}")
    private_dir(options.workdir)
    start = time.monotonic()
    with Teardown() as teardown:
        result = module.run(options, teardown)
    result.seconds = round(time.monotonic() - start, 1)
    result.quick = options.quick
    return result


def drill_workdir(home: Path, name: str) -> Path:
    """A fresh owner-only folder under the project's drills folder."""
    parent = private_dir(home / "drills")
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent))


def save(results: list[DrillResult], out: Path) -> Path:
    """Merges results into out/drills-latest.json (one entry per drill, the newest wins) and
    writes each to out/drill-<name>.json too, so results of separate runs combine."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LATEST
    kept = json.loads(path.read_text()) if path.exists() else {}
    for result in results:
        kept[result.drill] = json.loads(result.json_line())
        _write(out / f"drill-{result.drill}.json", kept[result.drill])
    _write(path, kept)
    return path


def _write(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
