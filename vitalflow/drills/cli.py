"""`vitalflow drill NAME|all`: run failover, replica and chaos drills and report their cost."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vitalflow.drills import DRILLS

console = Console()
_FIGURES = ("rto_s", "acknowledged_lost", "counts_exact", "extra_run_s")


def drill_command(
    name: Annotated[str, typer.Argument(help="Drill to run, or 'all': " + ", ".join(DRILLS) + ".",
                                        metavar="NAME")],
    quick: Annotated[bool, typer.Option(help="Short version: small data, about a minute.")]
    = False,
    seconds: Annotated[float | None, typer.Option(min=1, help="Time budget of drills that "
                                                  "repeat (chaos).")] = None,
    observations: Annotated[int | None, typer.Option(min=100, help="Input size (default: "
                                                     "per drill, 1M for the full run).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for drills-latest.json, "
                                             "drill-NAME.json and the failover report section "
                                             "(`vitalflow bench` reads them there).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per drill; the "
                                          "last line is the last drill's.")] = False,
    keep: Annotated[bool, typer.Option(help="Keep the drill's work folder (logs).")] = False,
) -> None:
    """Set up real replicated services, break them while the pipeline works, report the cost."""
    from vitalflow.config import load_settings
    from vitalflow.drills.base import DrillOptions
    from vitalflow.drills.runner import drill_workdir, run_drill, save

    names = list(DRILLS) if name == "all" else [name]
    if names[0] not in DRILLS:
        console.print(f"[red]unknown drill {name!r}[/]; known: {', '.join(DRILLS)}, all")
        raise typer.Exit(2)
    home = Path(load_settings().paths.home)
    results = []
    for drill in names:
        workdir = drill_workdir(home, drill)
        try:
            result = run_drill(drill, DrillOptions(workdir=workdir, quick=quick, seconds=seconds,
                                                   observations=observations))
        finally:
            if not keep:
                shutil.rmtree(workdir, ignore_errors=True)
        results.append(result)
        if as_json:
            print(result.json_line(), flush=True)
        else:
            _print(result)
    if out is not None:
        from vitalflow.drills.report import write

        saved = [save(results, out), write(out)]
        if not as_json:
            console.print(f"saved: {', '.join(map(str, saved))}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _print(result) -> None:
    table = Table(title=f"drill {result.drill}: {'ok' if result.ok else 'FAILED'} "
                        f"({result.seconds:.0f} s{', quick' if result.quick else ''})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in _FIGURES:
        value = getattr(result, key)
        if value is not None:
            table.add_row(key, str(value))
    for key, value in result.details.items():
        table.add_row(key, str(value))
    console.print(table)
    for note in result.notes:
        console.print(f"  note: {note}")
