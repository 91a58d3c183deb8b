"""Throughput benchmark: observations/s and peak memory of ingest, refine, derive and end-to-end."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.database import checkpoint, postmaster_pid, scratch_database
from benchmarks.inputs import DEFAULT_DATA, GENERATE_ARGS, patients_for, prepare_input
from benchmarks.machine import PROJECT_ROOT, machine_with_source, source_fingerprint
from benchmarks.meter import Meter, give_back_memory

DEFAULT_OUT = PROJECT_ROOT / "benchmarks" / "results"
SIZES = ("synthea", "1m", "100k")
QUICK_SWAP = {"1m": "100k"}
PIPELINE_STAGES = ("ingest", "refine", "derive")
PROFILABLE = (*PIPELINE_STAGES, "rerun")
TARGET_DATASET = "generated-1m"
TARGET_OBS_PER_SECOND = 100_000
TARGET_X_FLOOR = 3.0
TARGET_PEAK_RSS_MIB = 1.5 * 1024
FLOOR_REPEATS = 3


# --------------------------------------------------------------------------- measurement (child)

@dataclass(frozen=True)
class Database:
    url: str
    admin_url: str  # may run CHECKPOINT
    postmaster_pid: int | None  # None on an external server: its CPU is not ours to see
    kind: str


@contextmanager
def _database(work: Path) -> Iterator[Database]:
    """A private embedded server, or a scratch database when a URL is configured."""
    from vitalflow.services import SUPERUSER, EmbeddedPostgres, free_port

    external = os.environ.get("VITALFLOW__DATABASE__URL")
    if external:
        with scratch_database(external) as url:
            yield Database(url, external, None, "external")
        return
    server = EmbeddedPostgres(work / "embedded", free_port())
    url = server.up()
    try:
        yield Database(url, server.url("postgres", SUPERUSER), postmaster_pid(server.pgdata),
                       "embedded")
    finally:
        server.down()


def _redacted_settings(settings) -> dict:
    from storage_backends.base import redact

    dumped = settings.model_dump(mode="json")
    dumped["database"]["url"] = redact(dumped["database"]["url"])
    return dumped


def _input_files(input_dir: Path) -> dict[str, int]:
    from vitalflow.ingest.parquet import discover_inputs

    return {p.name: p.stat().st_size for p in discover_inputs(input_dir)}


def measure_floor(settings, layers, input_dir: Path, meter: Meter, database: Database,
                  reporter) -> tuple[int, list[dict]]:
    """(observations the floor read, the parts of each attempt); the median attempt is the
    unit of every ratio (benchmarks/floors.py)."""
    from dataclasses import asdict as fields_of

    from benchmarks.floors import measure_floor as floor_attempt

    attempts = []
    for attempt in range(1, FLOOR_REPEATS + 1):
        checkpoint(database.admin_url)
        with reporter.step(f"floor {attempt}: read_json + binary COPY + derive query", None), \
                meter.stage(f"floor-{attempt}"):
            attempts.append(floor_attempt(layers.refined, input_dir, settings))
    order = sorted(range(FLOOR_REPEATS), key=lambda i: meter.samples[f"floor-{i + 1}"].seconds)
    samples = [meter.samples.pop(f"floor-{i + 1}") for i in range(FLOOR_REPEATS)]
    median = order[len(order) // 2]  # one slow attempt must not skew it
    meter.samples["floor"] = samples[median]
    parts = [fields_of(a) | {"seconds": s.seconds} for a, s in zip(attempts, samples, strict=True)]
    return attempts[median].observations, [parts[i] for i in order]


def measure(dataset: str, input_dir: Path, meter: Meter, settings, database: Database) -> dict:
    """Ingest, refine, derive, the floor, then an incremental re-run, each timed on its own."""
    from vitalflow import pipeline
    from vitalflow.progress import RichReporter
    from vitalflow.storage import open_layers

    layers = open_layers(settings)  # schema creation is setup, not throughput
    run_id = pipeline.new_run_id()
    load_before = list(os.getloadavg())  # a shared machine's other work slows every figure
    with RichReporter() as reporter:
        # The stages run in the order, and with the memory, of a real run: the floor comes
        # after them, so its leftovers do not count towards their peak RSS.
        with meter.stage("ingest"):
            ingested = pipeline.ingest(settings, layers, input_dir, reporter)
        with meter.stage("refine"):
            refined = pipeline.refine_stage(settings, layers, run_id, reporter)
        with meter.stage("derive"), reporter.step("derive", None):
            derived = pipeline.derive_stage(settings, layers)
        floor_rows, floor_parts = measure_floor(settings, layers, input_dir, meter, database,
                                                reporter)
        give_back_memory()
        with meter.stage("rerun"):
            rerun = pipeline.run(settings, input_dir, reporter)
    counts = {t: c.as_dict() for t, c in sorted(refined.counts.items())}
    return {
        "dataset": dataset,
        "load_before": load_before,
        "load_after": list(os.getloadavg()),
        "database": database.kind,
        "input": {"path": str(input_dir), "files": _input_files(input_dir)},
        "observations": counts.get("Observation", {}).get("read", 0),
        "records": ingested.records,
        "floor_rows": floor_rows,
        "floor_seconds_all": [part["seconds"] for part in floor_parts],
        "floor_parts": floor_parts,  # read, load, derive seconds of each attempt, fastest first
        "stages": {name: asdict(sample) for name, sample in meter.samples.items()},
        "peak_rss_kib": max(meter.samples[name].peak_rss_kib for name in PIPELINE_STAGES),
        "peak_rss_is_per_stage": meter.peak_is_per_stage,
        # Large runs standardise in worker processes; the largest one's peak (0: none ran).
        "worker_peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "ingest": asdict(ingested),
        "counts": counts,
        "quarantine_reasons": dict(refined.quarantine_reasons.most_common()),
        "filter_reasons": dict(refined.filter_reasons.most_common()),
        "derive": asdict(derived),
        "rerun": {k: rerun[k] for k in ("ingest", "counts", "derive", "seconds")},
        "settings": _redacted_settings(settings),
        "profiled_stage": meter.profile_stage,
    }


def child_main(args: argparse.Namespace) -> None:
    """One dataset in this fresh process; prints its results as the last stdout line."""
    from vitalflow.config import load_settings

    work = Path(tempfile.mkdtemp(prefix=f"vitalflow-bench-{args.child}-"))
    profile_path = (args.out / f"profile-{args.child}-{args.profile}.prof"
                    if args.profile else None)
    if profile_path:
        profile_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _database(work) as database:
            settings = load_settings(paths={"home": work / "home"},
                                     database={"url": database.url})
            meter = Meter(database.postmaster_pid, args.profile, profile_path)
            result = measure(args.child, args.input, meter, settings, database)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if profile_path:
        result["profile"] = {"stats": str(profile_path),
                             "text": str(profile_path.with_suffix(".txt"))}
    print(json.dumps(result, default=str))


# --------------------------------------------------------------------------- inputs (parent)

def run_dataset(dataset: str, input_dir: Path, args: argparse.Namespace, console) -> dict:
    """Measure one dataset in a fresh interpreter, so its peak RSS is its own."""
    command = [sys.executable, "-m", "benchmarks.throughput", "--child", dataset,
               "--input", str(input_dir), "--out", str(args.out)]
    if args.profile:
        command += ["--profile", args.profile]
    console.rule(f"[bold]{dataset}")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        console.print(f"[bold red]{dataset} failed (exit {done.returncode})")
        return {"dataset": dataset, "error": f"child exited with {done.returncode}"}
    result = json.loads(lines[-1])
    result["child_wall_seconds"] = round(time.perf_counter() - started, 2)
    return result


# --------------------------------------------------------------------------- report (parent)

@dataclass
class Row:
    stage: str
    seconds: float
    obs_per_second: float | None
    ratio: float | None
    peak_rss_mib: float
    cpu_seconds: float
    server_cpu_seconds: float | None


def _row(label: str, sample: dict, observations: int | None, floor: float) -> Row:
    seconds = sample["seconds"]
    return Row(label, seconds, observations / seconds if observations and seconds else None,
               seconds / floor if floor else None, sample["peak_rss_kib"] / 1024,
               sample["cpu_seconds"], sample["server_cpu_seconds"])


def _end_to_end(stages: dict) -> dict:
    parts = [stages[name] for name in PIPELINE_STAGES]
    servers = [p["server_cpu_seconds"] for p in parts]
    return {"seconds": sum(p["seconds"] for p in parts),
            "cpu_seconds": sum(p["cpu_seconds"] for p in parts),
            "server_cpu_seconds": None if None in servers else sum(servers),
            "peak_rss_kib": max(p["peak_rss_kib"] for p in parts)}


def rows(result: dict) -> list[Row]:
    """The report table of one dataset; the floor is the unit of every ratio."""
    stages = result["stages"]
    observations = result["observations"]
    floor = stages["floor"]["seconds"]
    table = [_row(name, stages[name], observations, floor) for name in PIPELINE_STAGES]
    table.append(_row("end-to-end", _end_to_end(stages), observations, floor))
    table.append(_row(f"floor: read_json + binary COPY + derive query (median of "
                      f"{FLOOR_REPEATS})", stages["floor"], observations, floor))
    table.append(_row("incremental re-run (no-op)", stages["rerun"], None, floor))
    return table


def _number(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "—" if value is None else f"{value:,.{digits}f}{suffix}"


def _markdown_table(result: dict) -> list[str]:
    lines = ["| stage | seconds | observations/s | ratio to floor | peak RSS MiB "
             "| pipeline CPU s | Postgres CPU s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows(result):
        name = f"**{row.stage}**" if row.stage == "end-to-end" else row.stage
        lines.append(f"| {name} | {row.seconds:.2f} | {_number(row.obs_per_second)} "
                     f"| {_number(row.ratio, 2, '×')} | {row.peak_rss_mib:,.0f} "
                     f"| {row.cpu_seconds:.2f} | {_number(row.server_cpu_seconds, 2)} |")
    return lines


def _dataset_section(result: dict) -> list[str]:
    if "error" in result:
        return [f"## {result['dataset']}", "", f"Failed: {result['error']}.", ""]
    size = sum(result["input"]["files"].values()) / 2**20
    counts = result["counts"]
    patients = counts.get("Patient", {}).get("read", 0)
    obs = counts.get("Observation", {})
    rerun = result["rerun"]
    floor = result["floor_parts"][len(result["floor_parts"]) // 2]  # fastest first: the median
    lines = [f"## {result['dataset']}", "",
             f"{result['observations']:,} Observations and {patients:,} Patients read "
             f"({result['records']:,} records, {size:,.1f} MiB input: "
             f"{', '.join(result['input']['files'])}); "
             f"{obs.get('refined', 0):,} observations refined, {obs.get('filtered', 0):,} "
             f"filtered, {obs.get('quarantined', 0):,} quarantined. "
             f"Database: {result['database']}.", "",
             *_markdown_table(result), "",
             f"The pipeline process held {result['stages']['ingest']['start_rss_kib'] / 1024:,.0f}"
             " MiB before ingest (interpreter, imports); each stage's peak includes what it "
             "started with. "
             f"Largest child process (the standardise workers, or else the database tools): "
             f"{result['worker_peak_rss_kib'] / 1024:,.0f} "
             "MiB (two workers run on refines of 200,000 records or more), so all "
             "pipeline processes together stay under "
             f"{(result['peak_rss_kib'] + 2 * result['worker_peak_rss_kib']) / 1024:,.0f} MiB.",
             f"Floor attempts: {', '.join(f'{x:.2f}' for x in result['floor_seconds_all'])}"
             " s; the median one: " + ", ".join(
                 f"{part} {floor[part]:.2f} s" for part in ("read", "load", "derive")) + ". "
             f"Load average (1, 5, 15 min) before the run {_loads(result['load_before'])}, "
             f"after it {_loads(result['load_after'])}. "
             f"Re-run: {rerun['ingest']['new_batches']} new batches, "
             f"{sum(c['read'] for c in rerun['counts'].values()):,} records refined; "
             f"its own stage times {rerun['seconds']}.", ""]
    if not result["peak_rss_is_per_stage"]:
        lines += ["Peak RSS could not be reset between stages here: each figure is the peak so "
                  "far in the run.", ""]
    return lines


def _loads(averages: list[float]) -> str:
    return " / ".join(f"{x:.1f}" for x in averages)


def _target_line(results: list[dict]) -> str:
    target = next((r for r in results if r["dataset"] == TARGET_DATASET and "error" not in r),
                  None)
    goal = (f"≥ {TARGET_OBS_PER_SECOND:,} observations/s end-to-end on {TARGET_DATASET}, "
            f"≤ {TARGET_X_FLOOR:.0f}× the floor, "
            f"peak RSS < {TARGET_PEAK_RSS_MIB / 1024:.1f} GiB")
    if target is None:
        return f"Target ({goal}): not measured in this run."
    end_to_end = next(r for r in rows(target) if r.stage == "end-to-end")
    rate_ok = end_to_end.obs_per_second >= TARGET_OBS_PER_SECOND
    rss_mib = end_to_end.peak_rss_mib
    rss_ok = rss_mib < TARGET_PEAK_RSS_MIB
    ratio_ok = end_to_end.ratio <= TARGET_X_FLOOR
    verdict = "**met**" if rate_ok and ratio_ok and rss_ok else "**not met**"
    return (f"Target ({goal}): {verdict} — {end_to_end.obs_per_second:,.0f} observations/s "
            f"({'ok' if rate_ok else 'too slow'}), {end_to_end.ratio:.2f}× the floor "
            f"({'ok' if ratio_ok else 'too far'}), peak RSS {rss_mib:,.0f} MiB "
            f"({'ok' if rss_ok else 'too high'}).")


def markdown_report(report: dict) -> str:
    machine = report["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    lines = [f"# vitalflow throughput — {report['timestamp']}", "",
             f"Machine: {machine['cpu_count']} CPUs, {machine['memory_gib']:.1f} GiB RAM, "
             f"{machine['platform']}, Python {machine['python']}; {packages}; "
             f"commit {machine['git_commit'] or 'unknown'} (source hash "
             f"{machine['source_sha256']}).", "",
             f"Command: `{report['command']}`", "",
             _target_line(report["results"]), "",
             "Ratios divide a stage's wall time by the floor's (the bare work done the "
             "fastest known way: DuckDB read_json of the needed fields from the input, binary "
             "COPY into tables without keys or indexes, the derive query; benchmarks/floors.py), "
             "measured in the same process run; they are comparable across machines, "
             "absolute seconds are not. The machine may be shared: the load average is given "
             "beside each dataset. Peak RSS is the pipeline process only (not Postgres), "
             "reset before each stage; end-to-end = ingest + refine + derive.", ""]
    for name, reason in report["skipped"].items():
        lines += [f"## {name}", "", f"Skipped: {reason}.", ""]
    for result in report["results"]:
        lines += _dataset_section(result)
    return "\n".join(lines)


def write_chart(results: list[dict], path: Path) -> None:
    """Observations/s per stage, one bar per dataset; log scale as stages differ by 100×."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in results if "error" not in r]
    labels = [*PIPELINE_STAGES, "end-to-end", "floor"]
    width = 0.8 / max(len(measured), 1)
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, result in enumerate(measured):
        rates = [row.obs_per_second for row in rows(result)][:len(labels)]
        positions = [x + (i - (len(measured) - 1) / 2) * width for x in range(len(labels))]
        bars = ax.bar(positions, rates, width, label=result["dataset"])
        ax.bar_label(bars, labels=[f"{r / 1000:,.0f}k" for r in rates], fontsize=8)
    ax.axhline(TARGET_OBS_PER_SECOND, color="red", linestyle="--", linewidth=1,
               label=f"target {TARGET_OBS_PER_SECOND // 1000}k/s (end-to-end, 1M)")
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("observations / second (log)")
    ax.set_title("vitalflow throughput by stage")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(report: dict, out: Path, console) -> None:
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"throughput-{report['timestamp']}.json"
    raw.write_text(json.dumps(report, indent=1, default=str) + "\n")
    written = [raw]
    # A profiled run's timings are inflated by the profiler: keep them out of the latest report.
    if not report["profiled_stage"]:
        (out / "throughput-latest.md").write_text(markdown_report(report) + "\n")
        write_chart(report["results"], out / "throughput-latest.png")
        written += [out / "throughput-latest.md", out / "throughput-latest.png"]
    for path in written:
        console.print(f"wrote {path}")


def print_summary(report: dict, console) -> None:
    from rich.table import Table

    for result in report["results"]:
        if "error" in result:
            continue
        table = Table(title=f"{result['dataset']}: {result['observations']:,} observations")
        for column in ("stage", "seconds", "obs/s", "× floor", "peak RSS MiB"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for row in rows(result):
            table.add_row(row.stage, f"{row.seconds:.2f}", _number(row.obs_per_second),
                          _number(row.ratio, 2), f"{row.peak_rss_mib:,.0f}")
        console.print(table)
    console.print(_target_line(report["results"]).replace("**", ""), markup=False)


def parent_main(args: argparse.Namespace) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    timestamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    sizes = [QUICK_SWAP.get(s, s) if args.quick else s for s in args.sizes]
    results, skipped, generated = [], {}, {}
    fingerprint = source_fingerprint()
    with tempfile.TemporaryDirectory(prefix="vitalflow-bench-input-") as scratch:
        for size in sizes:
            dataset, folder, reason = prepare_input(size, args.data_dir, Path(scratch), console)
            if folder is None:
                console.print(f"[yellow]skipping {dataset}:[/] {reason}")
                skipped[dataset] = reason
                continue
            if size != "synthea":
                generated[dataset] = {"patients": patients_for(size), **GENERATE_ARGS,
                                      "folder": str(folder)}
            results.append(run_dataset(dataset, folder, args, console))
    report = {"timestamp": timestamp, "command": " ".join(["python -m benchmarks.throughput",
                                                            *sys.argv[1:]]),
              "arguments": {"sizes": sizes, "quick": args.quick, "profile": args.profile},
              "profiled_stage": args.profile, "generated": generated, "skipped": skipped,
              "machine": machine_with_source(fingerprint, console), "results": results}
    print_summary(report, console)
    write_outputs(report, args.out, console)
    if any("error" in r for r in results):
        raise SystemExit(1)


def _sizes(text: str) -> list[str]:
    sizes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise argparse.ArgumentTypeError(f"unknown size(s) {unknown}; choose from {SIZES}")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput",
                                     description=__doc__)
    parser.add_argument("--sizes", type=_sizes, default=["synthea", "1m"],
                        help=f"comma-separated datasets from {', '.join(SIZES)} "
                             "(default: synthea,1m)")
    parser.add_argument("--quick", action="store_true",
                        help="run the generated 1m set at 100k observations instead")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for the JSON, Markdown and PNG results")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="where generated input sets are kept for reuse")
    parser.add_argument("--profile", choices=PROFILABLE,
                        help="profile this stage with cProfile (writes profile-<dataset>-"
                             "<stage>.prof/.txt; timings are then inflated and the latest "
                             "report is left alone)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure one dataset
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    args.data_dir = args.data_dir.resolve()
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
