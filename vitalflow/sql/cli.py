"""Command line of self-serve SQL: `vitalflow sql`, `vitalflow console`, `vitalflow sql-users`."""

from __future__ import annotations

import getpass
import io
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer()
users_app = typer.Typer(help="Console users: hashed passwords and API tokens.",
                        no_args_is_help=True)
app.add_typer(users_app, name="sql-users")
out_console = Console()
errors = Console(stderr=True)
SHOWN_ROWS = 200  # rows printed as a table; the rest go to --out


def _fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=code)


@app.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="One SELECT (Trino dialect by default).")],
    engine: Annotated[str | None, typer.Option(help="duckdb (embedded, default) or trino.")] = None,
    role: Annotated[str | None, typer.Option(help="analyst or admin (default: sql.cli_role).")
                    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    out: Annotated[Path | None, typer.Option(help="Write the rows to this file (.parquet "
                                             "writes Parquet) instead of the terminal.")] = None,
    dialect: Annotated[str | None, typer.Option(help="trino or duckdb (default: sql.dialect).")
                       ] = None,
    profile: Annotated[str | None, typer.Option(help="Storage profile to query.")] = None,
) -> None:
    """Run one read-only query over the refined and derived layers; exit 0 only when it ran."""
    from vitalflow.config import load_settings
    from vitalflow.sql.service import QueryError, SqlService

    if format not in ("table", "csv", "json"):
        raise _fail(f"--format must be table, csv or json, not {format!r}")
    settings = load_settings()
    role = role or settings.sql.cli_role
    if role not in settings.sql.roles:
        raise _fail(f"unknown role {role!r}; roles: analyst, admin")
    secrets = settings.paths.root / "secrets"
    if role == "admin" and not os.access(secrets, os.R_OK | os.X_OK):
        raise _fail(f"--role admin is for the data's owner (who can read {secrets})")
    service = SqlService(settings, profile)
    try:
        result = service.query(query, getpass.getuser(), role, engine, dialect)
    except QueryError as exc:
        raise _fail(str(exc)) from None
    finally:
        service.close()
    if result.truncated:
        errors.print(f"[yellow]note:[/] stopped at the row limit of role {role} "
                     f"({settings.sql.roles[role].row_limit:,} rows)")
    if out is not None:
        _write(result.table, out, format)
        errors.print(f"{result.table.num_rows:,} rows written to {out}")
    elif format == "table":
        _print_table(result)
    else:
        sys.stdout.write(render(result.table, format))


def render(table, format: str) -> str:
    """Rows as CSV or JSON text (the CLI's stdout and the console's downloads)."""
    if format == "json":
        return json.dumps(table.to_pylist(), default=str) + "\n"
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    return buffer.getvalue().decode()


def _write(table, out: Path, format: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out, compression="zstd")
    else:
        out.write_text(render(table, "json" if format == "json" else "csv"))


def _print_table(result) -> None:
    table = Table(title=f"{result.table.num_rows:,} rows ({result.engine}, "
                        f"{result.duration_ms:.0f} ms)")
    for name in result.table.column_names:
        table.add_column(name)
    for row in result.table.slice(0, SHOWN_ROWS).to_pylist():
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    out_console.print(table)
    if result.table.num_rows > SHOWN_ROWS:
        out_console.print(f"… {result.table.num_rows - SHOWN_ROWS:,} more rows: use --out FILE "
                          "or --format csv")


@app.command("console")
def console_command(
    host: Annotated[str, typer.Option(help="Loopback only, unless you put a proxy with TLS in "
                                      "front.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Default: sql.console_port.")] = None,
    profile: Annotated[str | None, typer.Option(help="Storage profile to query.")] = None,
) -> None:
    """The SQL web console (FastAPI) with its HTTP API (POST /api/query, /docs)."""
    import uvicorn

    from vitalflow.config import load_settings
    from vitalflow.sql.console import create_app

    settings = load_settings()
    port = port or settings.sql.console_port
    errors.print(f"SQL console on http://{host}:{port}  (users: `vitalflow sql-users add NAME`)")
    uvicorn.run(create_app(settings, profile), host=host, port=port, log_level="warning")


@users_app.command("add")
def users_add(name: str, role: Annotated[str, typer.Option(help="analyst or admin.")] = "analyst"
              ) -> None:
    """Add or change a user; the password is asked twice (never on the command line)."""
    from vitalflow.sql.users import UserStore

    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = UserStore.from_settings(_settings())
    try:
        store.add(name, role, password)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    out_console.print(f"user {name} ({role}) saved in {store.path}")


@users_app.command("token")
def users_token(name: str) -> None:
    """Issue an API token for a user (shown once; only its hash is kept)."""
    from vitalflow.sql.users import UserStore

    try:
        token = UserStore.from_settings(_settings()).new_token(name)
    except KeyError as exc:
        raise _fail(str(exc)) from None
    print(token)


@users_app.command("list")
def users_list() -> None:
    """Users and their roles."""
    from vitalflow.sql.users import UserStore

    table = Table(title="Console users")
    for column in ("user", "role", "tokens"):
        table.add_column(column)
    for name, user in UserStore.from_settings(_settings()).users().items():
        table.add_row(name, user["role"], str(len(user.get("tokens", []))))
    out_console.print(table)


def _settings():
    from vitalflow.config import load_settings

    return load_settings()
