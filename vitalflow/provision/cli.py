"""`vitalflow config from-terraform`: an environment's Terraform outputs to config/NAME.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Settings files: generate config/*.toml from provisioned environments.",
                  no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


@app.command("from-terraform")
def from_terraform(
    out: Annotated[Path, typer.Option("--out", help="TOML file to write, e.g. "
                                      "config/prod.toml.")],
    env_dir: Annotated[Path | None, typer.Option("--env-dir", help="Applied environment "
                                                 "folder, e.g. terraform/envs/prod (runs "
                                                 "`tofu output -json` there).")] = None,
    output_json: Annotated[Path | None, typer.Option("--output-json", "--state",
                                                     help="Saved `terraform output -json`, or "
                                                     "a state file.")] = None,
) -> None:
    """Write a provisioned environment's settings (secrets stay in the secret store)."""
    from vitalflow.provision.terraform_config import (TerraformOutputError, read_outputs,
                                                      secret_references, settings_from_outputs,
                                                      write_config)
    if (env_dir is None) == (output_json is None):
        errors.print("[bold red]error:[/] give exactly one of --env-dir or --output-json/--state")
        raise typer.Exit(code=2)
    try:
        outputs = read_outputs(env_dir=env_dir, output_json=output_json)
    except TerraformOutputError as problem:
        errors.print(f"[bold red]error:[/] {problem}")
        raise typer.Exit(code=1) from None
    write_config(outputs, out)
    table = Table(title=f"{out} (environment {outputs.get('environment', '?')})")
    for column in ("section", "key", "value"):
        table.add_column(column)
    for section, values in settings_from_outputs(outputs).items():
        for key, value in values.items():
            table.add_row(section, key, str(value))
    for variable, reference in secret_references(outputs):
        table.add_row("secret", variable, reference)
    console.print(table)
    console.print(f"Use it with VITALFLOW_CONFIG={out}")
