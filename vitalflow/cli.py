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
from vitalflow.deploy import cli as deploy_cli
from vitalflow.dictionary import cli as dictionary_cli
from vitalflow.drills import cli as drill_cli
from vitalflow.audit import cli as audit_cli
from vitalflow.lineage import cli as lineage_cli
from vitalflow.lineage.marquez import Marquez
from vitalflow.merge import cli as merge_cli
from vitalflow.monitoring import cli as monitoring_cli
from vitalflow.monitoring.stack import MonitoringStack
from vitalflow.privacy import cli as privacy_cli
from vitalflow.refine import cli as refine_cli
from vitalflow.sql import cli as sql_cli
from vitalflow.provision import cli as provision_cli
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
app.add_typer(audit_cli.app, name="audit")
app.add_typer(sql_cli.app)  # sql, console, sql-users
app.add_typer(provision_cli.app, name="config")
app.add_typer(lineage_cli.app, name="lineage")
app.add_typer(deploy_cli.app, name="deploy")
app.command("drill")(drill_cli.drill_command)
console = Console()
errors = Console(stderr=True)
PROFILE_HELP = ("Storage profile: postgres, lakehouse, clickhouse, mixed or one defined in "
                "[storage.profiles] (default: storage.profile).")


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def _known_errors() -> tuple[type[Exception], ...]:
    from storage_backends.base import BackendMissing, BackendUnavailable
    from vitalflow.audit.trail import AuditUnavailable
    from vitalflow.database import OwnershipError
    from vitalflow.privacy.identity import KeyMismatch
    from vitalflow.privacy.keys import KeyProblem
    from vitalflow.ingest import IngestError
    from vitalflow.services import ServiceError
    from vitalflow.terminology.client import TerminologyUnavailable

    return (BackendUnavailable, BackendMissing, IngestError, ServiceError, OwnershipError,
            KeyProblem, KeyMismatch, TerminologyUnavailable, AuditUnavailable, ValueError)


def _sample_input(settings) -> Path:
    """The generated sample used when `run` is given no input."""
    from vitalflow.generate import generate

    sample = settings.paths.root / "sample"
    if not (sample / "_generation.json").exists():
        errors.print(f"No --input given: generating a synthetic sample of "
                     f"{settings.generate.patients} patients in {sample}")
        generate(sample, settings.generate.patients, seed=settings.generate.seed,
                 defect_rate=settings.generate.defect_rate)
        from vitalflow.locks import tighten_tree

        tighten_tree(sample)  # like everything under the project folder: owner-only
    return sample


@app.command()
def run(
    input: Annotated[Path | None, typer.Option("--input", "-i", help="Folder of FHIR NDJSON / "
                                                "Bundle files, or one file. Default: a "
                                                "generated sample.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as one JSON "
                                          "object (last stdout line).")] = False,
    profile: Annotated[str | None, typer.Option(help=PROFILE_HELP)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit with code 2 when an input "
                                         "file was unreadable, truncated or skipped.")] = False,
) -> None:
    """Ingest, refine and derive; services started here stay up until `services down`."""
    from vitalflow.deploy.handoff import run_pipeline
    from vitalflow.progress import RichReporter, SilentReporter

    settings = load_settings()
    try:
        source = input or _sample_input(settings)
        if as_json or not sys.stderr.isatty():
            summary = run_pipeline(settings, source, SilentReporter(), profile)
        else:
            with RichReporter() as reporter:
                summary = run_pipeline(settings, source, reporter, profile)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    summary["database_url"] = redact(summary["database_url"])
    summary["input"] = str(source)
    if as_json:
        print(json.dumps(summary, default=str))
    else:
        _print_summary(summary)
    _warn_unreadable_input(summary["ingest"], strict)


def _warn_unreadable_input(ingest: dict, strict: bool) -> None:
    """Input that was not (fully) read, on stderr; with --strict it fails the command."""
    for error in ingest["errors"]:
        errors.print(f"[yellow]warning:[/] not ingested: {error}")
    for name in ingest["truncated"]:
        errors.print(f"[yellow]warning:[/] {name} is truncated or damaged: its readable lines "
                     "were kept, the rest is one quarantined truncated_file record")
    for skipped in ingest["skipped"]:
        errors.print(f"[yellow]warning:[/] skipped {skipped['file']}: {skipped['hint']}")
    unread = len(ingest["errors"]) + len(ingest["truncated"]) + len(ingest["skipped"])
    if strict and unread:
        errors.print(f"[bold red]error:[/] {unread} input file(s) not fully read (--strict)")
        raise typer.Exit(code=2)


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
    unread = len(ingest["errors"]) + len(ingest["truncated"]) + len(ingest["skipped"])
    if unread:
        console.print(f"[red]  {len(ingest['errors'])} not ingested, {len(ingest['truncated'])} "
                      f"truncated, {len(ingest['skipped'])} skipped (details on stderr)")
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
                                         "or raw.record (administrator only: it holds "
                                         "names, addresses and identifiers).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="FILE.csv or FILE.parquet.")],
    profile: Annotated[str | None, typer.Option(help=PROFILE_HELP)] = None,
    snapshot: Annotated[int | None, typer.Option(help="Read the table as of this snapshot "
                                                 "(Iceberg; see `vitalflow raw history`).")] = None,
) -> None:
    """Write one table, from whichever backend holds it, to CSV or Parquet."""
    from vitalflow.audit.trail import AuditTrail
    from vitalflow.export import RAW_RECORD, export_table, require_administrator
    from vitalflow.lineage.recorder import export_lineage
    from vitalflow.storage import describe, open_layers

    settings = load_settings()
    try:
        require_administrator(table, settings.paths.root)
        layers = open_layers(settings, profile)
        with AuditTrail(settings, layers.control.url).action("data.export", table, {
                "out": str(out), "profile": layers.profile, "snapshot": snapshot}) as result, \
                export_lineage(settings, layers) as lineage:
            rows = result["rows"] = export_table(layers, table, out, snapshot)
            lineage.exported(table, out, rows)
    except (*_known_errors(), PermissionError) as exc:
        raise _fail(str(exc)) from None
    where = describe(layers)[table.split(".")[0]] if "." in table else ""
    console.print(f"Wrote {rows:,} rows of {table} ({layers.profile}: {where}) to {out}")
    if table == RAW_RECORD:
        console.print(f"[yellow]{out} holds patient names, addresses and identifiers; it is "
                      "readable by you only (mode 600): keep it so, and delete it when done.")


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

    from vitalflow.audit.trail import AuditTrail

    store = _iceberg_raw(profile)
    try:
        with AuditTrail(load_settings()).action("raw.maintain", "raw", {
                "older_than_days": older_than_days, "compact": compact}) as counts:
            result = store.maintain(timedelta(days=older_than_days), compact=compact)
            counts.update(asdict(result))
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
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


SERVICES = ("postgres", "s3", "monitoring", "trino", "marquez")
# Started only when named (`services up trino`): each is a server of its own, or a JVM.
ON_DEMAND = ("monitoring", "trino", "marquez")
ServiceNames = Annotated[list[str] | None, typer.Argument(
    help=f"Which services: {', '.join(SERVICES)} (default: all but {' and '.join(ON_DEMAND)}, "
         "which start only when named).")]


def _services(names: list[str] | None, settings) -> dict:
    from vitalflow import storage

    unknown = [n for n in names or [] if n not in SERVICES]
    if unknown:
        raise _fail(f"unknown service {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    chosen = names or list(SERVICES)
    made = {"postgres": lambda: storage.embedded_postgres(settings),
            "s3": lambda: storage.embedded_object_store(settings),
            "monitoring": lambda: MonitoringStack(settings),
            "trino": lambda: _trino(settings),
            "marquez": lambda: Marquez(settings)}
    return {name: made[name]() for name in chosen}


@services_app.command("up")
def services_up(names: ServiceNames = None) -> None:
    """Start the embedded PostgreSQL and the S3 object store (SeaweedFS) and print their URLs."""
    from vitalflow.audit.trail import service_event

    settings = load_settings()
    for name, service in _services(names or [n for n in SERVICES if n not in ON_DEMAND],
                                   settings).items():
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
        service_event(settings, name, "service.start")


@services_app.command("down")
def services_down(names: ServiceNames = None) -> None:
    """Stop the embedded services."""
    from vitalflow.audit.trail import service_event

    settings = load_settings()
    chosen = _services(names, settings)
    for name in chosen:  # all before any stops: the database may be among them
        service_event(settings, name, "service.stop")
    for name, service in chosen.items():
        console.print(f"{name}: {'stopped' if service.down() else 'was not running'}")


@services_app.command("status")
def services_status(as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object (last stdout line): service -> state and URL.")] = False
                    ) -> None:
    """Show whether each local service is running, and where."""
    rows = _service_states(load_settings())
    if as_json:
        print(json.dumps({name: {"state": state, "url": where} for name, state, where in rows}))
        return
    table = Table(title="Services")
    for column in ("service", "state", "where"):
        table.add_column(column)
    for name, state, where in rows:
        table.add_row(name, f"[green]{state}[/]" if state == "running" else state, where)
    console.print(table)


def _service_states(settings) -> list[tuple[str, str, str]]:
    """(service, state, URL or folder) of every local service; URLs without secrets."""
    services = _services(None, settings)
    rows = []
    if settings.database.url:
        rows.append(("postgres", "external", redact(settings.database.url)))
    else:
        server = services["postgres"]
        running = server.is_running()
        rows.append(("postgres", "running" if running else "stopped",
                     redact(server.url()) if running else str(server.pgdata)))
    if settings.s3.endpoint:
        rows.append(("s3", "external", redact(settings.s3.endpoint)))
    else:
        status = services["s3"].status()
        rows.append(("s3", "running" if status["running"] else "stopped",
                     status["endpoint"] or str(services["s3"].data_dir)))
    for name, state in services["monitoring"].status().items():
        rows.append((f"monitoring {name}", "running" if state["running"] else "stopped",
                     state["url"] or ""))
    status = services["trino"].status()
    rows.append(("trino", "running" if status["running"] else
                 "stopped" if status["installed"] else "not installed",
                 status["url"] or status["home"]))
    marquez = services["marquez"].status()
    rows.append(("marquez", "running" if marquez["running"] else "stopped",
                 marquez["url"] or ""))
    return rows


def _trino(settings):
    from vitalflow.sql.trino import TrinoServer

    return TrinoServer(settings)


if __name__ == "__main__":
    app()
