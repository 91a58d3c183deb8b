"""`vitalflow bench`: the same pipeline on every storage profile and input size, each figure
also as a ratio to that profile's floor measured in the same run (docs/storage.md)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.inputs import DEFAULT_DATA, GENERATE_ARGS, parse_size, patients_for
from benchmarks.machine import PROJECT_ROOT, machine_with_source, source_fingerprint

DEFAULT_OUT = PROJECT_ROOT / "benchmarks" / "results"
DEFAULT_PROFILES = ("postgres", "lakehouse", "clickhouse", "mixed")
DEFAULT_SIZES = ("10k", "100k", "1m")


@dataclass
class Options:
    sizes: list[str] = field(default_factory=lambda: list(DEFAULT_SIZES))
    profiles: list[str] = field(default_factory=lambda: list(DEFAULT_PROFILES))
    quick: bool = False
    out: Path = DEFAULT_OUT
    data_dir: Path = DEFAULT_DATA
    users: int = 8  # concurrent locust users
    seconds: float = 20.0  # how long they query
    repeats: int = 3  # floor attempts (the median counts)
    warm_runs: int = 20  # warm executions of each query after its cold one
    changed_fraction: float = 0.01

    def __post_init__(self) -> None:
        for size in self.sizes:
            parse_size(size)
        if self.quick:
            self.users, self.seconds = min(self.users, 4), min(self.seconds, 5.0)
            self.repeats, self.warm_runs = 1, min(self.warm_runs, 5)


# --------------------------------------------------------------------------- children

def _child_settings(case: dict):
    from vitalflow.config import load_settings

    return load_settings(**case["settings"])


def pipeline_child(case: dict, options: dict) -> dict:
    """First run, storage sizes, floors, 1% incremental run and full rebuild, in one process."""
    from benchmarks.floors import measure_floor
    from benchmarks.inputs import write_changes
    from benchmarks.meter import Meter, give_back_memory
    from benchmarks.queries import choose_parameters
    from vitalflow import pipeline
    from vitalflow.progress import RichReporter
    from vitalflow.pipeline import rebuild
    from vitalflow.storage import open_layers

    settings = _child_settings(case)
    layers = open_layers(settings, case["profile"])  # schema creation is setup, not throughput
    # No server CPU: pooled catalog connections never let the server settle between stages.
    meter = Meter()
    work = Path(case["work"])
    with RichReporter() as reporter:
        run_id = pipeline.new_run_id()
        with meter.stage("ingest"):
            ingested = pipeline.ingest(settings, layers, Path(case["input"]), reporter)
        with meter.stage("refine"):
            refined = pipeline.refine_stage(settings, layers, run_id, reporter)
        with meter.stage("derive"), reporter.step(f"{case['profile']}: derive", None):
            pipeline.derive_stage(settings, layers)
        storage = _storage_bytes(layers)
        Path(case["params"]).write_text(json.dumps(choose_parameters(layers)))
        floors = []
        for attempt in range(options["repeats"]):
            with reporter.step(f"floor {attempt + 1}: read_json + bulk append + derive query",
                               None):
                floors.append(measure_floor(layers.refined, Path(case["input"]), settings))
        # The bare load is reading the input and appending it; the bare derive, the query.
        loads = [floor.read + floor.load for floor in floors]
        derives = [floor.derive for floor in floors]
        changed = write_changes(Path(case["input"]), work / "changes", options["changed_fraction"])
        give_back_memory()
        with meter.stage("incremental"):
            incremental = pipeline.run(settings, work / "changes", reporter, case["profile"])
        after_incremental = _derived_state(layers)
        give_back_memory()
        with meter.stage("full_rebuild"):
            full, _ = rebuild(settings, layers, reporter)
        same = _derived_state(layers) == after_incremental
    layers.close()
    counts = {t: c.as_dict() for t, c in sorted(refined.counts.items())}
    return {
        "observations": counts.get("Observation", {}).get("read", 0),
        "records": ingested.records,
        "counts": counts,
        "stages": {name: asdict(sample) for name, sample in meter.samples.items()},
        "storage_bytes": storage,
        "floor": {"load_seconds": loads, "derive_seconds": derives,
                  "load": statistics.median(loads), "derive": statistics.median(derives),
                  "attempts": [asdict(floor) for floor in floors],
                  "persons": floors[-1].persons},
        "incremental": {"changed_observations": changed,
                        "counts": incremental["counts"], "derive": incremental["derive"],
                        "full_rebuild_counts": {t: c.as_dict() for t, c in full.counts.items()},
                        "equal_to_full_rebuild": same},
    }


def _storage_bytes(layers) -> dict[str, int]:
    from vitalflow.tables import DERIVED_TABLES, REFINED_TABLES

    return {"raw": layers.raw.storage_bytes(),
            "refined": sum(layers.refined.storage_bytes(t)
                           for t in REFINED_TABLES),
            "derived": sum(layers.derived.storage_bytes(t) for t in DERIVED_TABLES)}


def _derived_state(layers) -> list:
    """The derived rows without their write times, in a stable order."""
    from vitalflow.tables import DERIVED_TABLES

    state = []
    for table in DERIVED_TABLES:
        columns = [c for c in table.column_names if c != "computed_at"]
        rows = layers.derived.read(table, columns).to_pylist()
        state.append(sorted(rows, key=lambda r: tuple(str(r[k]) for k in table.primary_key)))
    return state


def queries_child(case: dict, options: dict) -> dict:
    """Each query's first run in a fresh process right after the engines restarted (cold),
    then its warm runs."""
    import random

    import duckdb
    import pyarrow as pa

    from benchmarks.queries import QUERIES
    from vitalflow.storage import open_layers

    settings = _child_settings(case)
    layers = open_layers(settings, case["profile"])
    # DuckDB's first scan of an Arrow table imports pyarrow.dataset (~0.2 s): not the storage's.
    warm_up = pa.table({"x": [1]})  # noqa: F841 - DuckDB reads it by name
    duckdb.connect().execute("SELECT count(*) FROM warm_up").fetchall()
    params = json.loads(Path(case["params"]).read_text())
    rng = random.Random(1)
    result = {}
    for name, query in QUERIES.items():
        started = time.perf_counter()
        rows = query(layers, settings, params, rng).num_rows
        result[name] = {"cold_ms": (time.perf_counter() - started) * 1000, "rows": rows}
    for name, query in QUERIES.items():
        warm = []
        for _ in range(options["warm_runs"]):
            started = time.perf_counter()
            query(layers, settings, params, rng)
            warm.append((time.perf_counter() - started) * 1000)
        result[name]["warm_ms"] = [round(x, 3) for x in warm]
    layers.close()
    return result


CHILDREN = {"pipeline": pipeline_child, "queries": queries_child}


def child_main(kind: str, case_file: str) -> None:
    payload = json.loads(Path(case_file).read_text())
    print(json.dumps(CHILDREN[kind](payload["case"], payload["options"]), default=str))


# --------------------------------------------------------------------------- one case (parent)

def _run_child(command: list[str]) -> dict:
    done = subprocess.run(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command[2:4])} exited with {done.returncode}")
    return json.loads(lines[-1])


class Services:
    """The services of one case, started by the parent so children can come and go: a private
    embedded PostgreSQL (or a scratch database on VITALFLOW__DATABASE__URL) and, for profiles
    on Iceberg, the embedded object store."""

    def __init__(self, work: Path) -> None:
        from vitalflow.services import free_port

        self.work = work
        self.external = os.environ.get("VITALFLOW__DATABASE__URL")
        self.overrides: dict = {"paths": {"home": str(work / "home")},
                                "s3": {"embedded_port": free_port()},
                                "database": {"embedded_port": free_port()}}
        self._scratch = ExitStack()  # drops the scratch database on an external server

    def settings(self):
        from vitalflow.config import load_settings

        return load_settings(**self.overrides)

    def up(self, profile: str) -> None:
        from benchmarks.database import scratch_database
        from vitalflow.storage import embedded_object_store, embedded_postgres

        if self.external:
            self.overrides["database"]["url"] = self._scratch.enter_context(
                scratch_database(self.external))
        else:
            embedded_postgres(self.settings()).up()
        settings = self.settings()
        placement = settings.storage.placement(profile)
        if "iceberg" in (placement.raw, placement.refined, placement.derived) and not (
                settings.s3.endpoint or settings.iceberg.warehouse):
            embedded_object_store(settings).up()

    def restart_database(self) -> None:
        """Empty the server's caches before cold queries (the OS page cache stays: dropping it
        needs privileges a benchmark should not ask for)."""
        from vitalflow.storage import embedded_postgres

        if not self.external:
            server = embedded_postgres(self.settings())
            server.down()
            server.up()

    def down(self) -> None:
        from vitalflow.storage import embedded_object_store, embedded_postgres

        settings = self.settings()
        embedded_object_store(settings).down()
        if self.external:
            self._scratch.close()
        else:
            embedded_postgres(settings).down()


def run_case(profile: str, size: str, input_dir: Path, options: Options, console) -> dict:
    """One profile on one input: pipeline, cold and warm queries, concurrent readers."""
    work = Path(tempfile.mkdtemp(prefix=f"vitalflow-bench-{profile}-{size}-"))
    services = Services(work)
    started = time.perf_counter()
    result: dict = {"profile": profile, "size": size, "phase_seconds": {}}
    lap = started

    def phase(name: str) -> None:  # where a case's wall time goes, services included
        nonlocal lap
        now = time.perf_counter()
        result["phase_seconds"][name], lap = round(now - lap, 2), now

    try:
        case = {"profile": profile, "settings": services.overrides, "input": str(input_dir),
                "work": str(work), "params": str(work / "params.json")}
        services.up(profile)
        phase("services_up")
        payload = work / "case.json"

        def child(kind: str) -> dict:
            payload.write_text(json.dumps({"case": case, "options": asdict(options)},
                                          default=str))
            return _run_child([sys.executable, "-m", "benchmarks.storage_options", kind,
                               str(payload)])

        result["pipeline"] = child("pipeline")
        phase("pipeline")
        services.restart_database()
        phase("restart")
        result["queries"] = child("queries")
        phase("queries")
        payload.write_text(json.dumps(case, default=str))
        result["concurrency"] = _run_child([sys.executable, "-m", "benchmarks.concurrency",
                                            str(payload), str(options.users),
                                            str(options.seconds)])
        phase("concurrency")
    except Exception as exc:  # one failed case must not lose the others' results
        console.print(f"[bold red]{profile} {size} failed:[/] {exc}")
        result["error"] = str(exc)
    finally:
        services.down()
        shutil.rmtree(work, ignore_errors=True)
        phase("services_down")
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


# --------------------------------------------------------------------------- the run (parent)

def run(options: Options) -> Path:
    """Every profile on every size; writes JSON, Markdown and charts, returns the JSON path."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from benchmarks.inputs import generated_input
    from benchmarks.report import print_summary, write_report

    console = Console(stderr=True)
    # One throwaway pseudonym key for the whole run, shared by its child processes.
    os.environ.setdefault("VITALFLOW_PSEUDONYM_KEY", secrets.token_hex(32))
    timestamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    fingerprint = source_fingerprint()
    inputs = {size: generated_input(size, options.data_dir, console) for size in options.sizes}
    cases = [(p, s) for s in options.sizes for p in options.profiles]
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        overall = progress.add_task("benchmark cases", total=len(cases))
        for profile, size in cases:
            progress.console.rule(f"[bold]{profile} · {size}")
            results.append(run_case(profile, size, inputs[size], options, progress.console))
            progress.advance(overall)
    report = {"timestamp": timestamp,
              "command": " ".join(["vitalflow bench", *sys.argv[2:]]),
              "options": {k: str(v) if isinstance(v, Path) else v
                          for k, v in asdict(options).items()},
              "generated": {s: {"patients": patients_for(s), **GENERATE_ARGS,
                                "folder": str(inputs[s])} for s in options.sizes},
              "machine": machine_with_source(fingerprint, console), "results": results}
    path = write_report(report, options.out, console)
    print_summary(report, console)
    if any("error" in r for r in results):
        raise SystemExit(1)
    return path


if __name__ == "__main__":
    child_main(sys.argv[1], sys.argv[2])
