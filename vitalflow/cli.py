"""The vitalflow command line: run the pipeline, generate data, manage local services."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from storage_backends.base import redact
from vitalflow.config import load_settings
from vitalflow.dictionary import cli as dictionary_cli
from vitalflow.lineage import cli as lineage_cli
from vitalflow.lineage.marquez import Marquez
from vitalflow.merge import cli as merge_cli
from vitalflow.monitoring import cli as monitoring_cli
from vitalflow.monitoring.stack import MonitoringStack
from vitalflow.privacy import cli as privacy_cli
from vitalflow.refine import cli as refine_cli
from vitalflow.terminology import cli as terminology_cli

app = typer.Typer(help="FHIR clinical data: raw -> refined -> derived.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
services_app = typer.Typer(help="Local services: embedded PostgreSQL, S3 object store, monitoring stack.",
                           no_args_is_help=True)
app.add_typer(services_app, name="services")
raw_app = typer.Typer(help="The raw layer: batches, snapshots, maintenance.")
app.add_typer(raw_app, name="raw")
app.command("filter")(refine_cli.filter_command)
app.command("rekey")(privacy_cli.rekey)
app.command("reidentify")(privacy_cli.reidentify)
app.add_typer(privacy_cli.keys_app, name="keys")
app.add_typer(merge_cli.app, name="merge")
app.command("unmerge")(merge_cli.unmerge)
app.add_typer(terminology_cli.app, name="terminology")
app.add_typer(dictionary_cli.app, name="dictionary")
monitoring_cli.register(app)  # `alerts` and `monitoring` command groups
app.add_typer(lineage_cli.app, name="lineage")
console = Console()
errors = Console(stderr=True)
PROFILE_HELP = ("Storage profile: postgres, lakehouse, clickhouse, mixed or one defined in "
                "[storage.profiles] (default: storage.profile).")


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def _known_errors() -> tuple[type[Exception], ...]:
    from storage_backends.base import BackendMissing, BackendUnavailable
    from vitalflow.database import OwnershipError
    from vitalflow.privacy.identity import KeyMismatch
    from vitalflow.privacy.keys import KeyProblem
    from vitalflow.ingest import IngestError
    from vitalflow.services import ServiceError
    from vitalflow.terminology.client import TerminologyUnavailable

    return (BackendUnavailable, BackendMissing, IngestError, ServiceError, OwnershipError,
            KeyProblem, KeyMismatch, TerminologyUnavailable, ValueError)


def _sample_input(settings) -> Path:
    """The generated sample used when `run` is given no input."""
    from vitalflow.generate import generate

    sample = settings.paths.root / "sample"
    if not (sample / "_generation.json").exists():
        errors.print(f"No --input given: generating a synthetic sample of "
                     f"{settings.generate.patients} patients in {sample}")
        generate(sample, settings.generate.patients, seed=settings.generate.seed,
                 defect_rate=settings.generate.defect_rate)
    return sample


@app.command()
def run(
    input: Annotated[Path | None, typer.Option("--input", "-i", help="Folder of FHIR NDJSON / "
                                                "Bundle files, or one file. Default: a "
                                                "generated sample.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as one JSON "
                                          "object (last stdout line).")] = False,
    profile: Annotated[str | None, typer.Option(help=PROFILE_HELP)] = None,
) -> None:
    """Ingest, refine and derive; services started here stay up until `services down`."""
    from vitalflow import pipeline
    from vitalflow.progress import RichReporter, SilentReporter

    settings = load_settings()
    try:
        source = input or _sample_input(settings)
        if as_json or not sys.stderr.isatty():
            summary = pipeline.run(settings, source, SilentReporter(), profile)
        else:
            with RichReporter() as reporter:
                summary = pipeline.run(settings, source, reporter, profile)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    summary["database_url"] = redact(summary["database_url"])
    summary["input"] = str(source)
    if as_json:
        print(json.dumps(summary, default=str))
    else:
        _print_summary(summary)


def _print_summary(summary: dict) -> None:
    counts = Table(title=f"Run {summary['run_id']}: records by outcome")
    outcomes = ("read", "refined", "quarantined", "filtered", "duplicates", "pending")
    for column in ("resource", *outcomes):
        counts.add_column(column, justify="left" if column == "resource" else "right")
    for resource, c in summary["counts"].items():
        counts.add_row(resource, *(f"{c[k]:,}" for k in outcomes))
    console.print(counts)
    ingest = summary["ingest"]
    console.print(f"Raw: {ingest['files']} files, {ingest['new_batches']} new batches "
                  f"({ingest['records']:,} records), {ingest['already_ingested']} already "
                  "ingested")
    for error in ingest["errors"]:
        console.print(f"[red]  not ingested:[/] {error}")
    _print_mapping("Quarantine reasons (this run)", summary["quarantine_reasons"])
    _print_mapping("Filtered (this run)", summary["filter_reasons"])
    terminology = summary.get("terminology") or {}
    _print_mapping("Terminology (records this run)", terminology.get("records", {}))
    _print_mapping("Terminology server calls", {k: v for k, v in terminology.get(
        "calls", {}).items() if v})
    if summary.get("persons_moved"):
        console.print(f"Record merging moved {summary['persons_moved']:,} records to another "
                      "person")
    _print_mapping("Tables (rows now)", summary["tables"])
    _print_mapping("BMI categories (persons)", summary["bmi_categories"])
    bands = Table(title="Age bands")
    for column in ("age band", "sex", "weight category", "patients", "mean BMI"):
        bands.add_column(column)
    for row in summary["age_bands"]:
        mean = "" if row["mean_bmi"] is None else f"{row['mean_bmi']:.1f}"
        bands.add_row(row["age_band"], row["sex"], row["weight_category"],
                      str(row["patients"]), mean)
    console.print(bands)
    seconds = summary["seconds"]
    console.print("Seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))
    storage = summary["storage"]
    console.print(f"Storage ({storage['profile']}): raw {storage['raw']}; refined "
                  f"{storage['refined']}; derived {storage['derived']}", soft_wrap=True)


def _print_mapping(title: str, mapping: dict) -> None:
    if not mapping:
        return
    table = Table(title=title)
    table.add_column("name")
    table.add_column("count", justify="right")
    for key, value in mapping.items():
        table.add_row(str(key), f"{value:,}")
    console.print(table)


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write NDJSON into.")],
    patients: Annotated[int, typer.Option(min=1, help="Number of patients.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 42,
    defect_rate: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of defective "
                                               "observation lines.")] = 0.02,
    visits: Annotated[int, typer.Option(min=1, help="Mean visits per patient (each visit "
                                        "measures height and weight).")] = 6,
    gzip: Annotated[bool, typer.Option(help="Write .ndjson.gz.")] = False,
) -> None:
    """Write synthetic FHIR Patient and Observation NDJSON with realistic values and defects."""
    from rich.progress import Progress

    from vitalflow.generate import generate as write

    with Progress(console=errors, transient=True) as progress:
        task = progress.add_task("generate", total=patients)
        report = write(out, patients, seed=seed, defect_rate=defect_rate, visits=visits,
                       gzip=gzip, progress=lambda done: progress.update(task, completed=done))
    console.print(f"Wrote {report.patients:,} Patient and {report.observations:,} Observation "
                  f"lines to {out}")
    _print_mapping("Defects written", report.defects)


@app.command()
def derive(full: Annotated[bool, typer.Option(help="Recompute every patient.")] = False,
           profile: Annotated[str | None, typer.Option(help=PROFILE_HELP)] = None) -> None:
    """Bring the derived tables up to date with refined (incremental by default)."""
    from vitalflow.pipeline import PipelineRun

    try:
        with PipelineRun(load_settings(), profile) as pipeline_run:
            result = pipeline_run.derive(full=full)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    _print_mapping("Derive", {k: int(v) for k, v in asdict(result).items()})


@app.command()
def rebuild(profile: Annotated[str | None, typer.Option(help=PROFILE_HELP)] = None,
            yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
            = False) -> None:
    """Empty refined and derived, then refine every raw batch again and derive every person."""
    from vitalflow.progress import RichReporter
    from vitalflow.pipeline import rebuild as rebuild_layers
    from vitalflow.storage import describe

    layers = _layers(profile)
    where = describe(layers)
    if not yes and not typer.confirm(f"Empty refined ({where['refined']}) and derived "
                                     f"({where['derived']}) and rebuild them from raw?"):
        raise typer.Exit(code=1)
    try:
        with RichReporter() as reporter:
            refined, derived = rebuild_layers(load_settings(), layers, reporter)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    finally:
        layers.close()
    for resource, counts in sorted(refined.counts.items()):
        _print_mapping(f"Rebuilt {resource}", counts.as_dict())
    _print_mapping("Derive", {k: int(v) for k, v in asdict(derived).items()})


@app.command()
def bench(
    sizes: Annotated[str | None, typer.Option(help="Comma-separated input sizes in Observations, "
                                              "e.g. 10k,100k,1m (default: those three; 10k "
                                              "with --quick).")] = None,
    profiles: Annotated[str, typer.Option(help="Comma-separated storage profiles.")]
    = "postgres,lakehouse,clickhouse,mixed",
    quick: Annotated[bool, typer.Option(help="One floor attempt, 5 warm query runs, 4 users "
                                        "for 5 s; 10k only unless --sizes is given.")] = False,
    users: Annotated[int, typer.Option(min=1, help="Concurrent locust users.")] = 8,
    seconds: Annotated[float, typer.Option(min=1, help="How long the users query.")] = 20,
    repeats: Annotated[int, typer.Option(min=1, help="Floor attempts; the median counts.")] = 3,
    warm_runs: Annotated[int, typer.Option(min=1, help="Warm runs of each query after its "
                                           "cold one.")] = 20,
    out: Annotated[Path | None, typer.Option(help="Folder for JSON, Markdown and PNG "
                                             "(default: benchmarks/results).")] = None,
) -> None:
    """Benchmark the pipeline on every storage profile and size, with floors, incremental runs,
    query latency and concurrent readers (benchmarks/README.md)."""
    try:
        from benchmarks.storage_options import DEFAULT_SIZES, Options, run as run_benchmark
    except ImportError as exc:
        raise _fail(f"{exc}: install the bench extra (pip install -e '.[bench]', or make bench)"
                    ) from None
    known = load_settings().storage.profiles
    chosen = [p.strip() for p in profiles.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in known]
    if unknown or not chosen:
        raise _fail(f"unknown profile(s) {', '.join(unknown) or '(none given)'}; known: "
                    f"{', '.join(sorted(known))}")
    size_list = ([s.strip() for s in sizes.split(",") if s.strip()] if sizes
                 else ["10k"] if quick else list(DEFAULT_SIZES))
    try:
        options = Options(sizes=size_list, profiles=chosen, quick=quick, users=users,
                          seconds=seconds, repeats=repeats, warm_runs=warm_runs,
                          **({"out": out.resolve()} if out else {}))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    run_benchmark(options)


@app.command()
def export(
    table: Annotated[str, typer.Argument(help="LAYER.TABLE, e.g. derived.patient_bmi_latest "
                                         "or raw.record.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="FILE.csv or FILE.parquet.")],
    profile: Annotated[str | None, typer.Option(help=PROFILE_HELP)] = None,
    snapshot: Annotated[int | None, typer.Option(help="Read the table as of this snapshot "
                                                 "(Iceberg; see `vitalflow raw history`).")] = None,
) -> None:
    """Write one table, from whichever backend holds it, to CSV or Parquet."""
    from vitalflow.export import export_table
    from vitalflow.lineage.recorder import export_lineage
    from vitalflow.storage import describe, open_layers

    settings = load_settings()
    try:
        layers = open_layers(settings, profile)
        with export_lineage(settings, layers) as lineage:
            rows = export_table(layers, table, out, snapshot)
            lineage.exported(table, out, rows)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    where = describe(layers)[table.split(".")[0]] if "." in table else ""
    console.print(f"Wrote {rows:,} rows of {table} ({layers.profile}: {where}) to {out}")


@raw_app.callback(invoke_without_command=True)
def raw_batches(ctx: typer.Context,
                profile: Annotated[str | None, typer.Option(help=PROFILE_HELP)] = None) -> None:
    """List the raw batches in the manifest (subcommands: history, maintain)."""
    if ctx.invoked_subcommand:
        return
    from vitalflow.storage import describe

    layers = _layers(profile)
    table = Table(title=f"Raw batches ({layers.profile}: {describe(layers)['raw']})")
    for column in ("batch", "records", "format", "type hint", "ingested at", "by", "source"):
        table.add_column(column)
    for batch in layers.raw.manifest():
        table.add_row(batch.batch_id[:12], f"{batch.records:,}", batch.format,
                      batch.resource_type_hint or "", batch.ingested_at[:19], batch.ingested_by,
                      batch.source_uri)
    console.print(table)


@raw_app.command("history")
def raw_history(profile: Annotated[str | None, typer.Option(help=PROFILE_HELP)] = "lakehouse"
                ) -> None:
    """Snapshots of the raw layer on Iceberg; `export raw.record --snapshot ID` reads one."""
    store = _iceberg_raw(profile)
    table = Table(title="Raw layer snapshots (raw.record)")
    for column in ("snapshot", "committed at", "operation", "records added"):
        table.add_column(column)
    for snapshot in store.history():
        table.add_row(str(snapshot.snapshot_id), snapshot.committed_at, snapshot.operation,
                      f"{snapshot.rows:,}" if snapshot.rows is not None else "")
    console.print(table)


@raw_app.command("maintain")
def raw_maintain(
    older_than_days: Annotated[float, typer.Option(min=0, help="Expire snapshots older than "
                                                   "this (the current one is always kept).")] = 7,
    compact: Annotated[bool, typer.Option(help="Merge small data files.")] = True,
    profile: Annotated[str | None, typer.Option(help=PROFILE_HELP)] = "lakehouse",
) -> None:
    """Expire old snapshots of the raw layer on Iceberg and compact small files."""
    from datetime import timedelta

    result = _iceberg_raw(profile).maintain(timedelta(days=older_than_days), compact=compact)
    _print_mapping("Raw maintenance", {k: int(v) for k, v in asdict(result).items()})


def _layers(profile: str | None):
    from vitalflow.storage import open_layers

    try:
        return open_layers(load_settings(), profile)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None


def _iceberg_raw(profile: str | None):
    from vitalflow.ingest.parquet import ParquetRawStore

    layers = _layers(profile)
    if isinstance(layers.raw, ParquetRawStore):
        raise _fail(f"the raw layer of profile '{layers.profile}' is Parquet files, which keep "
                    "no snapshots: use a profile with raw on Iceberg (e.g. --profile lakehouse)")
    return layers.raw


SERVICES = ("postgres", "s3", "monitoring", "marquez")
ON_REQUEST = ("marquez",)  # started only when named: a JVM and its own database
ServiceNames = Annotated[list[str] | None, typer.Argument(
    help=f"Which services: {', '.join(SERVICES)} (default: all; `up` starts "
    f"{', '.join(ON_REQUEST)} only when named).")]


def _services(names: list[str] | None, settings) -> dict:
    from vitalflow import storage

    unknown = [n for n in names or [] if n not in SERVICES]
    if unknown:
        raise _fail(f"unknown service {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    chosen = names or list(SERVICES)
    made = {"postgres": lambda: storage.embedded_postgres(settings),
            "s3": lambda: storage.embedded_object_store(settings),
            "monitoring": lambda: MonitoringStack(settings),
            "marquez": lambda: Marquez(settings)}
    return {name: made[name]() for name in chosen}


@services_app.command("up")
def services_up(names: ServiceNames = None) -> None:
    """Start the embedded PostgreSQL and the S3 object store (SeaweedFS) and print their URLs."""
    settings = load_settings()
    default = [name for name in SERVICES if name not in ON_REQUEST]
    for name, service in _services(names or default, settings).items():
        if name == "postgres" and settings.database.url:
            console.print("postgres: database.url is set, so vitalflow starts none")
            continue
        if name == "s3" and settings.s3.endpoint:
            console.print("s3: s3.endpoint is set, so vitalflow starts none")
            continue
        try:
            console.print(f"{name}: {service.up()}")
        except _known_errors() as exc:
            raise _fail(str(exc)) from None


@services_app.command("down")
def services_down(names: ServiceNames = None) -> None:
    """Stop the embedded services."""
    for name, service in _services(names, load_settings()).items():
        console.print(f"{name}: {'stopped' if service.down() else 'was not running'}")


@services_app.command("status")
def services_status() -> None:
    """Show whether each local service is running."""
    settings = load_settings()
    services = _services(None, settings)
    table = Table(title="Services")
    for column in ("service", "state", "where"):
        table.add_column(column)
    if settings.database.url:
        table.add_row("postgres", "external", redact(settings.database.url))
    else:
        server = services["postgres"]
        running = server.is_running()
        table.add_row("postgres (embedded)", "[green]running[/]" if running else "stopped",
                      server.url() if running else str(server.pgdata))
    if settings.s3.endpoint:
        table.add_row("s3", "external", redact(settings.s3.endpoint))
    else:
        status = services["s3"].status()
        table.add_row("s3 (embedded SeaweedFS)",
                      "[green]running[/]" if status["running"] else "stopped",
                      status["endpoint"] or str(services["s3"].data_dir))
    for name, state in services["monitoring"].status().items():
        table.add_row(f"monitoring {name}", "[green]running[/]" if state["running"] else
                      "stopped", state["url"] or "")
    marquez = services["marquez"].status()
    table.add_row("marquez (OpenLineage)", "[green]running[/]" if marquez["running"] else
                  "stopped", marquez["url"] or "")
    console.print(table)


if __name__ == "__main__":
    app()
