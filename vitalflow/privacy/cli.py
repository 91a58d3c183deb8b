"""Commands for keys, re-keying and audited re-identification."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vitalflow.privacy.keys import (KeyProblem, configured_key, dev_key_path, new_key_text,
                                    read_key_file, write_key_file)

app = typer.Typer(help="Pseudonymisation keys, re-keying and re-identification.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
keys_app = typer.Typer(help="The pseudonymisation key (only its key id is ever shown).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()
errors = Console(stderr=True)
REIDENTIFY_URL_ENV = "VITALFLOW_REIDENTIFY_URL"


def _settings():
    from vitalflow.config import load_settings

    settings = load_settings()
    return settings, settings.privacy


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code=1)


def _known_errors() -> tuple[type[Exception], ...]:
    import psycopg

    from vitalflow.audit.trail import AuditUnavailable
    from vitalflow.privacy.identity import KeyMismatch, ReidentificationDenied
    from vitalflow.privacy.rekey import RekeyError
    from vitalflow.ingest import IngestError

    return (KeyProblem, KeyMismatch, RekeyError, ReidentificationDenied, IngestError,
            AuditUnavailable, ValueError, psycopg.OperationalError)


def _embedded(settings):
    from vitalflow.services import EmbeddedPostgres

    return EmbeddedPostgres(settings.paths.root, settings.database.embedded_port)


def _database_url(settings) -> str:
    """The configured DSN, or the embedded server's (started if needed)."""
    return settings.database.url or _embedded(settings).up()


@keys_app.command("show")
def keys_show() -> None:
    """Print the configured key's id and where it comes from (never the key)."""
    settings, privacy = _settings()
    try:
        key = configured_key(privacy, settings.paths.root)
    except KeyProblem as exc:
        raise _fail(str(exc)) from None
    if key is None:
        console.print(f"No key configured; the first run creates a development key at "
                      f"{dev_key_path(settings.paths.root)}" +
                      (" (refused: privacy.require_key is set)" if privacy.require_key else ""))
        return
    console.print(f"key id {key.key_id} from {key.origin}")


@keys_app.command("new")
def keys_new(out: Annotated[Path, typer.Option("--out", "-o", help="Key file to create "
                                               "(mode 600; never overwritten).")]) -> None:
    """Create a new random key file, e.g. for `vitalflow rekey --new-key-file`."""
    from vitalflow.audit.trail import AuditTrail

    settings, _ = _settings()
    try:
        with AuditTrail(settings).action("privacy.key_created", str(out)) as result:
            key = write_key_file(out, new_key_text())
            result["key_id"] = key.key_id
    except FileExistsError:
        raise _fail(f"{out} exists already; a key file is never overwritten") from None
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    console.print(f"Wrote a new key (key id {key.key_id}) to {out}")


@app.command()
def rekey(
    new_key_file: Annotated[Path, typer.Option("--new-key-file", help="File holding the new "
                                               "key (see `vitalflow keys new`).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Move every pseudonym from the configured key to a new one, in one transaction."""
    import psycopg

    from vitalflow.audit.trail import AuditTrail
    from vitalflow.privacy.rekey import rekey as run_rekey

    settings, privacy = _settings()
    try:
        old_key = configured_key(privacy, settings.paths.root)
        if old_key is None:
            raise KeyProblem("no pseudonymisation key is configured, so there is nothing to "
                             "re-key from")
        new_key = read_key_file(new_key_file)
        if not yes:
            typer.confirm(f"Re-key from key id {old_key.key_id} to {new_key.key_id}?",
                          abort=True)
        trail = AuditTrail(settings, _database_url(settings))
        with psycopg.connect(trail.url) as conn:
            result = run_rekey(conn, old_key, new_key, privacy=privacy)
            # In the re-keying transaction: no event, no re-keying.
            trail.record("privacy.rekey", conn=conn, target="identity", params={
                "old_key_id": result.old_key_id, "new_key_id": result.new_key_id},
                counts={"identities": result.identities, **result.rows})
        trail.anchor()
        trail.close()
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    console.print(f"Re-keyed {result.identities:,} identities from key id {result.old_key_id} "
                  f"to {result.new_key_id}")
    for column, rows in result.rows.items():
        console.print(f"  {column}: {rows:,} rows")
    console.print(f"Now configure the new key ({new_key.origin}) instead of the old one "
                  f"({old_key.origin}): the pipeline refuses any key but the active one.")


@app.command()
def reidentify(
    pseudonym: Annotated[str, typer.Argument(help="The pseudonym, e.g. p_3f2a...")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")],
    url: Annotated[str | None, typer.Option("--url", envvar=REIDENTIFY_URL_ENV,
                                            help="Connection as a member of "
                                            "vitalflow_reidentifier (default: the embedded "
                                            "server's vitalflow_reidentifier).")] = None,
) -> None:
    """Show the source identity behind a pseudonym; logged in identity.reidentification_log."""
    import psycopg

    from vitalflow.privacy.identity import REIDENTIFIER
    from vitalflow.privacy.identity import reidentify as lookup

    settings, _ = _settings()
    try:
        if url is None:
            if settings.database.url:
                raise ValueError(f"database.url is set: give --url (or {REIDENTIFY_URL_ENV}) "
                                 f"for a member of {REIDENTIFIER}")
            url = _embedded(settings).url(role=REIDENTIFIER)
        with psycopg.connect(url, autocommit=True) as conn:
            found = lookup(conn, pseudonym, reason, _who())
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    if not found:
        raise _fail("no identity has this pseudonym (the request was logged)")
    for system, source_id in found:
        typer.echo(f"{system}\t{source_id}")  # plain, for scripts: rich would expand the tab


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


if __name__ == "__main__":
    app()
