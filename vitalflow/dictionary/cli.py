"""`vitalflow dictionary`: build the docs site, check, profile, export and diff the dictionary."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

app = typer.Typer(help="The data dictionary (docs/dictionary.md).", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
VERSIONS = Path(__file__).resolve().parents[2] / "docs" / "dictionary" / "versions"
ProfileOption = Annotated[str | None, typer.Option(
    "--profile", help="Storage profile (default: storage.profile).")]


class Format(StrEnum):
    frictionless = "frictionless"
    jsonschema = "jsonschema"
    openmetadata = "openmetadata"


def _layers(profile: str | None):
    from vitalflow.config import load_settings
    from vitalflow.storage import open_layers

    return open_layers(load_settings(), profile)


def _profile(profile: str | None, k: int) -> dict:
    from vitalflow.dictionary.profile import profile_layers

    layers = _layers(profile)
    try:
        with console.status("profiling") as status:
            return profile_layers(layers, k, lambda name: status.update(f"profiling {name}"))
    finally:
        layers.close()


@app.command()
def build(out: Annotated[Path, typer.Option("--out", help="Folder for the site.")],
          with_profile: Annotated[bool, typer.Option(
              "--with-profile", help="Add what the data shows (runs `profile`).")] = False,
          profile: ProfileOption = None,
          k: Annotated[int, typer.Option(help="Smallest count shown.")] = 10) -> None:
    """Write the static HTML site (and Markdown under OUT/markdown)."""
    from vitalflow.dictionary.model import as_dict
    from vitalflow.dictionary.site import build_site

    profiled = _profile(profile, k)["tables"] if with_profile else None
    pages = build_site(as_dict(), out, profiled)
    console.print(f"{len(pages)} pages in {out} (open {out / 'index.html'})")


@app.command()
def check(profile: ProfileOption = None,
          static: Annotated[bool, typer.Option(
              "--static", help="Only the description itself; touch no database.")] = False
          ) -> None:
    """Exit 1, naming table and column, when a description, unit (numeric), PII class or owner
    is missing, or a database's comments differ from the description."""
    from vitalflow.dictionary.model import lint

    problems = lint()
    if not static:
        from vitalflow.dictionary.check import database_problems

        layers = _layers(profile)
        try:
            problems += database_problems(layers)
        finally:
            layers.close()
    if not problems:
        console.print("dictionary complete" + ("" if static else "; every database's comments "
                                               "match the description"))
        return
    table = RichTable("table", "column", "problem", title=f"{len(problems)} problems")
    for problem in problems:
        table.add_row(problem.table, problem.column or "", problem.what)
    errors.print(table)
    raise typer.Exit(1)


@app.command("profile")
def profile_command(profile: ProfileOption = None,
                    k: Annotated[int, typer.Option(help="Smallest count shown.")] = 10,
                    as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Rows, null share, distinct count, min/max or top values and freshness per column; records
    per quarantine reason. Identifying values are never shown; counts under k are suppressed."""
    from vitalflow.dictionary.site import profile_cells

    found = _profile(profile, k)
    if as_json:
        print(json.dumps(found))
        return
    for name, table in found["tables"].items():
        view = RichTable("column", "null share", "distinct", "min / max or top values",
                         title=f"{name}: {table['rows']:,} rows, newest {table['newest']}")
        for column, stats in table["columns"].items():
            view.add_row(column, *profile_cells(stats))
        console.print(view)
    reasons = RichTable("reason", "records", title=f"quarantine reasons (under {k}: hidden)")
    for reason, count in found["quarantine_reasons"]["shown"].items():
        reasons.add_row(reason, f"{count:,}")
    if found["quarantine_reasons"]["suppressed"]:
        reasons.add_row(f"{found['quarantine_reasons']['suppressed']} more", f"< {k} each")
    console.print(reasons)


@app.command()
def export(format: Annotated[Format, typer.Option("--format")],
           out: Annotated[Path, typer.Option("--out", help="Folder to write into.")],
           data: Annotated[bool, typer.Option(
               "--data", help="frictionless: also export each table as CSV beside it.")] = False,
           profile: ProfileOption = None) -> None:
    """Frictionless datapackage.json, a JSON Schema per table, or OpenMetadata entities."""
    from vitalflow.dictionary import formats
    from vitalflow.dictionary.model import as_dict

    dictionary = as_dict()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    if format is Format.frictionless:
        package = formats.frictionless(dictionary)
        if data:
            _export_data(package, out, profile)
        documents = {"datapackage.json": package}
    elif format is Format.jsonschema:
        documents = {f"{name}.schema.json": schema
                     for name, schema in formats.json_schemas(dictionary).items()}
    else:
        documents = {"openmetadata.json": formats.openmetadata(dictionary)}
    for name, document in documents.items():
        (out / name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {', '.join(documents)} to {out}")


def _export_data(package: dict, out: Path, profile: str | None) -> None:
    from vitalflow.export import export_table

    layers = _layers(profile)
    try:
        for resource in package["resources"]:
            export_table(layers, resource["name"], out / resource["path"])
    finally:
        layers.close()


@app.command()
def diff(old: Annotated[str, typer.Argument(help="A snapshot file, or 'current'.")],
         new: Annotated[str, typer.Argument(help="A snapshot file, or 'current'.")] = "current"
         ) -> None:
    """Added, removed and changed tables and columns; exit 1 when one breaks readers."""
    from vitalflow.dictionary.diff import diff as compare, load

    changes = compare(load(old), load(new))
    if not changes:
        console.print(f"{old} -> {new}: no changes")
        return
    table = RichTable("", "change", "id", "detail", title=f"{old} -> {new}: "
                      f"{len(changes)} changes")
    for change in changes:
        table.add_row("[bold red]BREAKING[/]" if change.breaking else "", change.kind, change.id,
                      change.detail)
    console.print(table)
    if any(change.breaking for change in changes):
        raise typer.Exit(1)


@app.command()
def snapshot(folder: Annotated[Path, typer.Option(help="Where versions live.")] = VERSIONS
             ) -> None:
    """Keep this release's dictionary as FOLDER/<version>.json, for later diffs."""
    from vitalflow.dictionary.diff import write_snapshot
    from vitalflow.dictionary.model import as_dict

    console.print(f"wrote {write_snapshot(as_dict(), folder)}")
