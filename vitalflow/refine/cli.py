"""Refine's command: the whitelist's effect on an input, per rule, writing nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vitalflow.config import load_settings
from vitalflow.ingest import IngestError

console = Console()
errors = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code=1)


def filter_command(
    input: Annotated[Path, typer.Option("--input", "-i", help="Folder of FHIR NDJSON / Bundle "
                                        "files, or one file.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what the whitelist would "
                                          "filter; nothing is written.")] = False,
    rules: Annotated[Path | None, typer.Option(help="Rules file (default: filter.rules_file, "
                                               "config/whitelist.yaml).")] = None,
) -> None:
    """Show the effect of the whitelist on an input without writing anything."""
    from vitalflow.refine.dry_run import dry_run as run_dry
    from vitalflow.refine.standardise import Standardiser, standardiser_options
    from vitalflow.refine.whitelist import WhitelistError, load_whitelist

    if not dry_run:
        raise _fail("only --dry-run is available: `vitalflow run` applies the whitelist")
    settings = load_settings()
    try:
        whitelist = load_whitelist(rules or settings.filter.path)
        standardiser = Standardiser(*standardiser_options(settings))
        report = run_dry(input, whitelist, standardiser, settings.ingest.batch_rows,
                         settings.privacy.source_system)
    except (WhitelistError, IngestError, ValueError) as exc:
        raise _fail(str(exc)) from None
    total = report.total_read
    table = Table(title=f"Whitelist dry run over {input} ({whitelist.source})")
    table.add_column("rule")
    table.add_column("records filtered", justify="right")
    table.add_column("share", justify="right")
    for name, count in report.rows(whitelist.rule_names):
        table.add_row(name, f"{count:,}", f"{count / total:.1%}" if total else "-")
    console.print(table)
    console.print(f"Read {total:,} records in {report.files} files; passed "
                  f"{report.total_passed:,}" + (f" ({report.total_passed / total:.1%})"
                                               if total else ""))
    for error in report.errors:
        console.print(f"[red]  not read:[/] {error}")
