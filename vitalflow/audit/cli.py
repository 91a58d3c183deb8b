"""`vitalflow audit show | verify | export | anchor`: read, check and hand over the audit trail."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The audit trail: who did what and when (docs/audit.md).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True)
AUDIT_URL_ENV = "VITALFLOW_AUDIT_URL"
Url = Annotated[str | None, typer.Option(
    "--url", envvar=AUDIT_URL_ENV, help="Connection as a member of vitalflow_auditor (default: "
    "the embedded server's vitalflow_auditor, or database.url when that is set).")]
_COLUMNS = "seq, prev_hash, hash, body"


def _connect(url: str | None):
    """A read connection for the auditor; the settings say where anchors and their key are."""
    import psycopg

    from vitalflow.config import load_settings
    from vitalflow.privacy.identity import AUDITOR
    from vitalflow.services import EmbeddedPostgres

    settings = load_settings()
    if url is None and settings.database.url:
        url = settings.database.url
    elif url is None:
        server = EmbeddedPostgres(settings.paths.root, settings.database.embedded_port)
        server.up()
        url = server.url(role=AUDITOR)
    try:
        return settings, psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise _fail(f"cannot reach the audit database ({type(exc).__name__})") from None


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code=1)


def _event(row) -> dict:
    seq, prev_hash, hash_, body = row
    return {"seq": seq, **json.loads(body), "hash": hash_, "prev_hash": prev_hash}


@app.command()
def show(
    since: Annotated[datetime | None, typer.Option(help="Events at or after this time (UTC "
                                                   "unless an offset is given).")] = None,
    user: Annotated[str | None, typer.Option(help="OS user, database role or application "
                                             "user.")] = None,
    action: Annotated[str | None, typer.Option(help="Action or its family, e.g. "
                                               "pipeline.run or identity.")] = None,
    target: Annotated[str | None, typer.Option(help="Target table or layer (substring).")]
    = None,
    limit: Annotated[int, typer.Option(min=1, help="The latest N events.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    url: Url = None,
) -> None:
    """List events, oldest first, filtered; a table, or JSON lines with --json."""
    where, args = [], []
    if since is not None:
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        where.append("at >= %s")
        args.append(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    if user:
        where.append("%s IN (body::jsonb ->> 'os_user', body::jsonb ->> 'db_role', "
                     "body::jsonb ->> 'app_user')")
        args.append(user)
    if action:
        where.append("(action = %s OR action LIKE %s)")
        args += [action, action.rstrip(".") + ".%"]
    if target:
        where.append("strpos(body::jsonb ->> 'target', %s) > 0")
        args.append(target)
    query = (f"SELECT * FROM (SELECT {_COLUMNS} FROM audit.event "
             f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq DESC LIMIT %s) e "
             "ORDER BY seq")
    settings, conn = _connect(url)
    with conn:
        rows = [_event(r) for r in conn.execute(query, [*args, limit])]
    if as_json:
        for event in rows:
            print(json.dumps(event, sort_keys=True))
        return
    table = Table(title=f"Audit events ({len(rows)} shown, newest {limit} at most)")
    for column in ("seq", "at (UTC)", "action", "outcome", "who", "target", "where", "details"):
        table.add_column(column, overflow="fold")
    for e in rows:
        who = " / ".join(x for x in (e.get("app_user"), e.get("os_user"), e.get("db_role")) if x)
        colour = {"failed": "red", "started": "yellow"}.get(e.get("outcome"), "green")
        table.add_row(str(e["seq"]), e["at"][:23], e["action"],
                      f"[{colour}]{e.get('outcome', '')}[/]", who, e.get("target") or "",
                      f"{e.get('host', '')}:{e.get('pid', '')} {e.get('run_id') or ''}".strip(),
                      _details(e))
    console.print(table)


def _details(event: dict, hex_chars: int = 12) -> str:
    """Parameters, counts and error as short key=value pairs; long hashes cut to a prefix."""
    pairs = []

    def add(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                add(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, str) and len(value) == 64:
            pairs.append(f"{prefix}={value[:hex_chars]}…")
        else:
            pairs.append(f"{prefix}={value}")
    add("", {**event.get("params", {}), **event.get("counts", {})})
    if event.get("error_class"):
        pairs.append(f"error={event['error_class']}")
    return ", ".join(pairs)


@app.command()
def verify(url: Url = None) -> None:
    """Recompute every hash, check the chain and the anchors; exit 1 naming the first broken
    event, 0 with the number of events verified."""
    from vitalflow.audit.verify import verify as check

    settings, conn = _connect(url)
    with conn, console.status("verifying the audit chain"):
        verdict = check(conn, settings)
    for warning in verdict.warnings:
        errors.print(f"[yellow]warning:[/] {warning}")
    if not verdict.ok:
        for problem in verdict.problems:
            errors.print(f"[bold red]broken:[/] {problem}", soft_wrap=True)
        raise typer.Exit(code=1)
    console.print(f"[green]OK[/]: {verdict.events:,} events verified (head {verdict.head or 0}),"
                  f" {verdict.anchors:,} anchors checked")


@app.command("export")
def export(out: Annotated[Path, typer.Option("--out", "-o", help="JSON lines file to write "
                                             "(mode 600).")],
           url: Url = None) -> None:
    """Every event as one JSON object per line, for a SIEM (streamed; hashes included)."""
    import os

    from rich.progress import Progress

    settings, conn = _connect(url)
    with conn:
        total = conn.execute("SELECT count(*) FROM audit.event").fetchone()[0]
        partial = out.with_name(out.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle, conn.transaction(), Progress(
                console=errors, transient=True) as progress:
            task = progress.add_task("export", total=total)
            cursor = conn.cursor(name="audit_export")  # server-side: memory stays flat
            cursor.itersize = 10_000
            for row in cursor.execute(f"SELECT {_COLUMNS} FROM audit.event ORDER BY seq"):
                handle.write(json.dumps(_event(row), sort_keys=True) + "\n")
                progress.advance(task)
        partial.replace(out)
    console.print(f"Wrote {total:,} events to {out}")


@app.command()
def anchor() -> None:
    """Sign the head of the chain and append it to the anchors file (e.g. from cron)."""
    import psycopg

    from vitalflow.audit.anchors import anchors_path, write_anchor
    from vitalflow.config import load_settings
    from vitalflow.storage import control_url

    settings = load_settings()
    with psycopg.connect(control_url(settings), autocommit=True) as conn:
        made = write_anchor(conn, settings)
    if made is None:
        console.print("The audit chain is empty: nothing to anchor")
        return
    console.print(f"Anchored event {made.seq} ({made.hash[:12]}…) in {anchors_path(settings)}")
