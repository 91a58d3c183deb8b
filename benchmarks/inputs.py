"""Benchmark inputs: generated sets by size (kept and reused), the Synthea sample, and a copy of
an input with a fraction of its Observations changed (for incremental runs)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SYNTHEA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "synthea-r4"
SYNTHEA_FILES = ("Patient.ndjson.gz", "Observation.ndjson.gz")
# Generated sets are deterministic, so they are kept (git-ignored) and reused between runs.
DEFAULT_DATA = PROJECT_ROOT / "benchmarks" / "work" / "data"
GENERATE_ARGS = {"visits": 10, "seed": 1, "defect_rate": 0.02}
# At visits=10 the generator writes ~27.5 Observation lines per patient: "1m" is 40,000 patients
# (~1.1M lines), the set the throughput target was set on.
OBSERVATIONS_PER_PATIENT = 25
CHANGED_AT = "2030-01-01T00:00:00Z"  # later than any generated lastUpdated: the change wins


def parse_size(text: str) -> int:
    """'10k' -> 10,000 observations; '1m' -> 1,000,000; '2500' -> 2,500."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([km]?)", text.strip().lower())
    if not match:
        raise ValueError(f"size {text!r}: use a number of Observations such as 10k, 100k, 1m")
    number = float(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]
    if number < OBSERVATIONS_PER_PATIENT:
        raise ValueError(f"size {text!r} is too small: at least {OBSERVATIONS_PER_PATIENT}")
    return int(number)


def patients_for(size: str) -> int:
    return parse_size(size) // OBSERVATIONS_PER_PATIENT


def synthea_input(scratch: Path) -> tuple[Path | None, str | None]:
    """Only Patient and Observation: the other Synthea files would be filtered, not refined."""
    missing = [name for name in SYNTHEA_FILES if not (SYNTHEA_DIR / name).is_file()]
    if missing:
        return None, f"Synthea files {', '.join(missing)} not found in {SYNTHEA_DIR}"
    folder = scratch / "synthea"
    folder.mkdir(exist_ok=True)
    for name in SYNTHEA_FILES:
        if not (folder / name).exists():
            (folder / name).symlink_to(SYNTHEA_DIR / name)
    return folder, None


def _generator_fingerprint(patients: int) -> str:
    """Changes when the generator's code or arguments change, so a stale cache is never used."""
    source = (PROJECT_ROOT / "vitalflow" / "generate.py").read_bytes()
    arguments = json.dumps({"patients": patients, **GENERATE_ARGS}, sort_keys=True).encode()
    return hashlib.sha256(source + arguments).hexdigest()[:12]


def generated_input(size: str, data_dir: Path, console) -> Path:
    """The generated set of this size, made once (not measured) and reused afterwards."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vitalflow.generate import REPORT_FILE, generate

    patients = patients_for(size)
    folder = data_dir / f"generated-{size}-{_generator_fingerprint(patients)}"
    if (folder / REPORT_FILE).exists():  # the report is written last: the set is complete
        console.print(f"[dim]reusing generated {size} set in {folder}[/]")
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(f"generate {size} (not measured)", total=patients)
        report = generate(partial, patients, **GENERATE_ARGS,
                          progress=lambda done: progress.update(task, completed=done))
    partial.rename(folder)
    console.print(f"generated {report.patients:,} Patient and {report.observations:,} "
                  f"Observation lines in {folder}")
    return folder


def prepare_input(size: str, data_dir: Path, scratch: Path, console
                  ) -> tuple[str, Path | None, str | None]:
    """(dataset name, input folder or None, reason it was skipped)."""
    if size == "synthea":
        folder, reason = synthea_input(scratch)
        return "synthea", folder, reason
    return f"generated-{size}", generated_input(size, data_dir, console), None


def write_changes(input_dir: Path, out_dir: Path, fraction: float = 0.01) -> int:
    """A new Observation file holding every (1/fraction)-th readable Observation of the input as
    a newer version with a 2% different value; returns how many it holds."""
    step = max(1, round(1 / fraction))
    out_dir.mkdir(parents=True, exist_ok=True)
    changed = 0
    with (out_dir / "Observation.ndjson").open("w") as out:
        for number, line in enumerate(_observation_lines(input_dir)):
            if number % step:
                continue
            try:
                resource = json.loads(line)
                quantity = resource["valueQuantity"]
                quantity["value"] = round(float(quantity["value"]) * 1.02, 2)
                meta = resource.setdefault("meta", {})
                meta["versionId"] = str(int(meta.get("versionId") or 1) + 1)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a deliberately broken record: it has no value to change
            meta["lastUpdated"] = CHANGED_AT
            out.write(json.dumps(resource, separators=(",", ":")) + "\n")
            changed += 1
    return changed


def _observation_lines(input_dir: Path):
    import gzip

    for path in sorted(input_dir.glob("Observation*.ndjson*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as lines:
            yield from lines
