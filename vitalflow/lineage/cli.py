"""`vitalflow lineage ...`: trace a value to its file and line, impact of a file, flush events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

app = typer.Typer(help="Lineage: where a value came from, what a file touched, OpenLineage "
                  "events (docs/lineage.md).", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True)
Profile = Annotated[str | None, typer.Option(help="Storage profile (default: storage.profile).")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object, for machines.")]


def _with_layers(profile: str | None, work):
    from vitalflow.config import load_settings
    from vitalflow.storage import open_layers

    layers = open_layers(load_settings(), profile)
    try:
        return work(layers)
    except (LookupError, ValueError) as exc:
        errors.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=1) from None
    finally:
        layers.close()


@app.command()
def trace(table: Annotated[str, typer.Argument(help="derived.patient_bmi_latest, "
                                                "refined.observation or refined.patient")],
          key: Annotated[str, typer.Option(help="The row's key (patient key or observation id).")],
          profile: Profile = None, as_json: AsJson = False) -> None:
    """From a derived or refined row back to its raw records, batch, file and line, and the runs
    that wrote each step."""
    from vitalflow.lineage.trace import trace as trace_row

    found = _with_layers(profile, lambda layers: trace_row(layers, table, key))
    if as_json:
        print(json.dumps(found))
        return
    tree = Tree(f"[bold]{table}[/] {key}")
    if "row" in found:
        tree.add(", ".join(f"{k}={v}" for k, v in found["row"].items() if v is not None))
    if "written_by" in found:
        tree.add(f"written by job {found['written_by']['job']} at "
                 f"{found['written_by']['derived_at']}")
    for step in found.get("observations", []) + ([found] if "raw" in found and
                                                   "observations" not in found else []):
        node = tree.add(f"[cyan]{step.get('observation_id', found['key'])}[/] "
                        + " ".join(str(step.get(k, "")) for k in ("measure", "value", "unit")))
        raw = step["raw"]
        place = f"line {raw['line']}" if raw["line"] is not None else f"entry {raw['entry']}"
        node.add(f"raw record {raw['raw_record_id']}: [bold]{raw['source_file']}[/] {place}")
        node.add(f"batch {raw['batch_id']} ingested {raw['ingested_at']} by vitalflow "
                 f"{raw['ingest_code_version']}")
        node.add(f"refined by run {raw['refine_run_id']} ({raw['refine_run_status']}) at "
                 f"{raw['refined_at']}")
    console.print(tree)


@app.command()
def impact(file_or_batch: Annotated[str, typer.Argument(help="An input file (path, name or "
                                                        "the file itself) or a raw batch id.")],
           profile: Profile = None, as_json: AsJson = False) -> None:
    """Which refined and derived rows came from one input file or batch."""
    from vitalflow.lineage.trace import impact as impact_of

    from vitalflow.config import load_settings

    bands = load_settings().derive.age_bands
    found = _with_layers(profile, lambda layers: impact_of(layers, file_or_batch, bands))
    if as_json:
        print(json.dumps(found))
        return
    table = Table(title=f"Rows from {found['source_file']} (batch {found['batch_id']}, "
                  f"{found['records']:,} records)")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in {**found["refined"], **found["derived"]}.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)


@app.command()
def flush() -> None:
    """Send the OpenLineage events a down or slow server missed."""
    from vitalflow.config import load_settings
    from vitalflow.lineage.marquez import Marquez
    from vitalflow.lineage.recorder import lineage_folder
    from vitalflow.lineage.sink import EventSink

    settings = load_settings()
    url = settings.lineage.url or Marquez(settings).api_url()
    if not url:
        errors.print("[red]error:[/] no OpenLineage endpoint: set lineage.url or start "
                     "`vitalflow services up marquez`")
        raise typer.Exit(code=1)
    sent, pending = EventSink(settings.lineage, lineage_folder(settings), url).flush()
    console.print(f"sent {sent} events to {url}; {pending} still pending")
    if pending:
        raise typer.Exit(code=1)


@app.command()
def migrate(to: Annotated[str, typer.Option("--to", help="file, openlineage or hybrid")],
            profile: Profile = None) -> None:
    """Move the database to another lineage option, losing nothing; then set [lineage] mode."""
    from vitalflow.config import load_settings
    from vitalflow.lineage.migrate import migrate as migrate_to

    settings = load_settings()
    done = _with_layers(profile, lambda layers: migrate_to(settings, layers, to))
    console.print(", ".join(f"{k}: {v:,}" for k, v in done.items())
                  + f". Now set [lineage] mode = \"{to}\" (or VITALFLOW__LINEAGE__MODE={to}).")


@app.command()
def graph(out: Annotated[Path, typer.Option(help="lineage.html or lineage.png")]
          = Path("lineage.html"), profile: Profile = None) -> None:
    """A picture of jobs and datasets with column-level edges."""
    from vitalflow.lineage.datasets import layer_datasets
    from vitalflow.lineage.graph import write

    def draw(layers):
        return write(layer_datasets(layers), layers.profile, out)

    console.print(f"Wrote {_with_layers(profile, draw)}")
