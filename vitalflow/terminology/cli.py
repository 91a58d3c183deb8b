"""`vitalflow terminology serve | conformance | check`: the terminology command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vitalflow.terminology.settings import TerminologySettings

app = typer.Typer(help="FHIR terminology: local server, conformance tests, code checks.",
                  no_args_is_help=True)
console = Console()


def load_terminology_settings() -> TerminologySettings:
    """The `terminology` section of the vitalflow settings, or defaults until it is wired."""
    try:
        from vitalflow.config import load_settings
        return getattr(load_settings(), "terminology", None) or TerminologySettings()
    except Exception:  # noqa: BLE001 - settings belong to others; defaults keep this usable
        return TerminologySettings()


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="interface to bind"),
          port: int = typer.Option(8180, help="TCP port"),
          content: Path | None = typer.Option(None, help="folder of FHIR JSON resources "
                                                 "(default config/terminology)")) -> None:
    """Run the local FHIR terminology server."""
    import uvicorn

    from vitalflow.terminology.server import create_app
    console.print(f"terminology server on http://{host}:{port} (metadata: /metadata)",
                  highlight=False)
    uvicorn.run(create_app(content_dir=content), host=host, port=port, log_level="warning")


@app.command()
def conformance(report: Path | None = typer.Option(None, help="write a JSON report here"),
                tests: Path | None = typer.Option(None, help="tx-ecosystem tests folder "
                                                     "(default ../shared/conformance/...)"),
                base_url: str = typer.Option("", help="server to test (default: the local "
                                             "server, started on a free port)"),
                only: str | None = typer.Option(None, help="one suite or test name")) -> None:
    """Run the HL7 tx-ecosystem tests (validate-code, lookup, translate) and compare."""
    from vitalflow.terminology import conformance as conf
    from vitalflow.terminology.embedded import EmbeddedServer
    from vitalflow.terminology.registry import Registry
    from vitalflow.terminology.server import create_app

    folder = tests or conf.default_tests_dir()
    if not (folder / "test-cases.json").exists():
        console.print(f"[red]no tx-ecosystem tests at {folder}[/red]")
        raise typer.Exit(2)
    if base_url:
        results = conf.run(base_url, folder, only)
    else:
        # The tests bring their own resources as tx-resource; start from an empty server.
        with EmbeddedServer(app=create_app(Registry())) as url:
            results = conf.run(url, folder, only)
    summary = conf.summary(results)
    table = Table(title="tx-ecosystem conformance (general mode)")
    for col in ("suite", "passed", "failed", "pass rate"):
        table.add_column(col, justify="left" if col == "suite" else "right")
    for name, s in summary["suites"].items():
        total = s["passed"] + s["failed"]
        table.add_row(name, str(s["passed"]), str(s["failed"]), f"{s['passed'] / total:.0%}")
    table.add_row("[bold]all[/bold]", str(summary["passed"]),
                  str(summary["total"] - summary["passed"]), f"{summary['pass_rate']:.1%}")
    console.print(table)
    if report:
        report.write_text(json.dumps(conf.report(results), indent=1))
        console.print(f"report: {report}")


@app.command()
def check(system: str, code: str, unit: str | None = typer.Option(None),
          base_url: str = typer.Option("", help="server (default: settings, else local)")) -> None:
    """Check one coding as the refine stage would, and print the outcome."""
    import pyarrow as pa

    from vitalflow.terminology.check import check_codings
    from vitalflow.terminology.client import TerminologyClient
    from vitalflow.terminology.embedded import EmbeddedServer

    settings = load_terminology_settings()
    url = base_url or settings.base_url
    server = None if url else EmbeddedServer()
    try:
        url = url or server.start()
        with TerminologyClient(url, settings) as client:
            table = pa.table({"system": [system], "code": [code], "unit": [unit]})
            row = check_codings(table, client).to_pylist()[0]
        console.print_json(json.dumps(row))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    app()
