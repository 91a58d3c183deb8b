"""`vitalflow alerts listen` and `vitalflow monitoring status-page | check | grafana`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vitalflow.config import load_settings

alerts_app = typer.Typer(help="Alerts: a local webhook receiver for Alertmanager.",
                         no_args_is_help=True)
monitoring_app = typer.Typer(help="Monitoring: status page, config checks, Grafana dashboard "
                             "(docs/monitoring.md).", no_args_is_help=True)
console = Console()
INFRA = Path(__file__).resolve().parents[2] / "infra" / "monitoring"


def register(app: typer.Typer) -> None:
    """Add the `alerts` and `monitoring` command groups to the vitalflow command line."""
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(monitoring_app, name="monitoring")


Host = Annotated[str, typer.Option(help="interface to bind")]


@alerts_app.command()
def listen(host: Host = "127.0.0.1",
           port: Annotated[int, typer.Option(
               help="TCP port (alerting.webhook_url points here)")] = 9099,
           store: Annotated[Path | None, typer.Option(
               help="JSON-lines file (default <paths.home>/monitoring/alerts.jsonl)")] = None
           ) -> None:
    """Receive Alertmanager notifications: print each alert and append it to a JSON-lines file."""
    from vitalflow.monitoring.receiver import AlertReceiver

    store = store or load_settings().paths.root / "monitoring" / "alerts.jsonl"
    console.print(f"listening on http://{host}:{port}/alerts, storing in {store}",
                  highlight=False)
    receiver = AlertReceiver(store, host, port,
                             echo=lambda line: console.print(line, highlight=False))
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass


@monitoring_app.command("status-page")
def status_page(host: Host = "127.0.0.1",
                port: Annotated[int, typer.Option(help="TCP port")] = 8190,
                prometheus: Annotated[str, typer.Option(
                    help="Prometheus URL (default: the local stack of `services up "
                    "monitoring`)")] = "") -> None:
    """Serve the status page: the dashboard's panels and firing alerts, from Prometheus."""
    import uvicorn

    from vitalflow.monitoring.stack import MonitoringStack
    from vitalflow.monitoring.status_page import create_app

    url = prometheus or MonitoringStack(load_settings()).url()
    console.print(f"status page on http://{host}:{port} (Prometheus {url})", highlight=False)
    uvicorn.run(create_app(url), host=host, port=port, log_level="warning")


def checks() -> list[tuple[str, list[str]]]:
    """The tool runs that validate the shipped configuration."""
    return [("alert rules", ["promtool", "check", "rules", *map(str, sorted(
                (INFRA / "rules").glob("*.yml")))]),
            ("rule unit tests", ["promtool", "test", "rules", *map(str, sorted(
                (INFRA / "tests").glob("*.test.yml")))]),
            ("Prometheus config", ["promtool", "check", "config", str(INFRA / "prometheus.yml")]),
            ("Alertmanager config", ["amtool", "check-config", str(INFRA / "alertmanager.yml")])]


@monitoring_app.command()
def check() -> None:
    """promtool and amtool on the shipped rules and configs, and the rules' unit tests."""
    table = Table(title="Monitoring configuration")
    for column in ("check", "result"):
        table.add_column(column)
    failed = False
    for name, command in checks():
        if not shutil.which(command[0]):
            table.add_row(name, f"[yellow]{command[0]} not installed[/]")
            failed = True
            continue
        result = subprocess.run(command, capture_output=True, text=True, cwd=INFRA,
                                check=False)
        failed |= result.returncode != 0
        table.add_row(name, "[green]ok[/]" if result.returncode == 0 else
                      f"[red]failed[/]\n{result.stdout[-1500:]}{result.stderr[-1500:]}")
    console.print(table)
    if failed:
        raise typer.Exit(1)


@monitoring_app.command()
def grafana(out: Annotated[Path | None, typer.Option(
        help="where to write the dashboard JSON (default "
        "infra/monitoring/grafana/vitalflow.json)")] = None) -> None:
    """Write the Grafana dashboard (the status page's panels) as JSON."""
    from vitalflow.monitoring.panels import GRAFANA_FILE, write_grafana_dashboard

    console.print(f"written {write_grafana_dashboard(out or GRAFANA_FILE)}", highlight=False)
