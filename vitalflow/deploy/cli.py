"""`vitalflow deploy check`: prefect.yaml against the ownership graph (cycles, two writers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from vitalflow.deploy.graph import DeploymentError, Graph

app = typer.Typer(help="Prefect deployments as code (prefect.yaml, docs/deploy.md).",
                  no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def check_file(path: Path, graph: Graph | None = None) -> tuple[Graph, list, dict]:
    """The deployments of a prefect.yaml and the edges their triggers make; DeploymentError
    when the graph refuses them."""
    graph = graph or Graph()
    deployments = graph.deployments(yaml.safe_load(path.read_text()) or {})
    graph.check(deployments)
    return graph, deployments, graph.edges(deployments)


@app.command("check")
def check(file: Annotated[Path, typer.Option("--file", "-f", help="The deployment file.")]
          = Path("prefect.yaml")) -> None:
    """Refuse a deployment set with a trigger cycle (named) or two writers of one table; else
    show which deployment writes what and which runs start which."""
    try:
        graph, deployments, edges = check_file(file)
    except DeploymentError as exc:
        for problem in exc.problems:
            errors.print(f"[bold red]refused:[/] {problem}")
        raise typer.Exit(code=1) from None
    except (OSError, yaml.YAMLError) as exc:
        errors.print(f"[bold red]error:[/] cannot read {file}: {exc}")
        raise typer.Exit(code=1) from None
    table = Table(title=f"{file}: {len(deployments)} deployments, no cycle, one writer per table")
    for column in ("deployment", "writes", "its runs can start"):
        table.add_column(column)
    for deployment in deployments:
        table.add_row(deployment.label, "\n".join(sorted(graph.writes(deployment.flow))) or "-",
                      "\n".join(sorted(edges[deployment.label])) or "-")
    console.print(table)
