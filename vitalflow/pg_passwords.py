"""Passwords of the embedded PostgreSQL: the libpq passfile, SCRAM verifiers, rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import psycopg
from psycopg import sql

_ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL would store for password: sent instead of the
    password, so no statement text (in a log, say) ever holds a usable secret."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return (f"SCRAM-SHA-256${_ITERATIONS}:{b64(salt)}$"
            f"{b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}")


def new_password() -> str:
    return secrets.token_urlsafe(24)


def read_passfile(path: Path) -> dict[str, str]:
    """role -> password of a passfile written by write_passfile or ensure_embedded_roles."""
    known = {}
    for line in path.read_text().splitlines():
        if line.strip():
            *_, role, password = line.split(":", 4)
            known[role] = password
    return known


def write_passfile(path: Path, passwords: dict[str, str]) -> None:
    """Replace path atomically with an owner-only passfile (never half written)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"127.0.0.1:*:*:{role}:{password}\n"
                          for role, password in passwords.items())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def pending_passfile(passfile: Path) -> Path:
    return passfile.with_name(passfile.name + ".new")


def rotate(admin_url: str, passfile: Path) -> None:
    """New passwords for every role of the passfile. The new file is written first, the roles
    changed in one transaction, then the file moved into place; finish_rotation settles a
    rotation that a crash interrupted."""
    old = read_passfile(passfile)
    new = {role: new_password() for role in old}
    pending = pending_passfile(passfile)
    write_passfile(pending, new)
    with psycopg.connect(admin_url) as conn:
        existing = {r[0] for r in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(new),))}
        for role in existing:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(scram_verifier(new[role]))))
    os.replace(pending, passfile)


def finish_rotation(admin_url_with_passfile, passfile: Path) -> None:
    """After a crash during rotate: keep whichever passfile the server accepts."""
    pending = pending_passfile(passfile)
    if not pending.exists():
        return
    try:
        psycopg.connect(admin_url_with_passfile(pending), connect_timeout=10).close()
    except psycopg.OperationalError:  # the roles were not changed: the old file is right
        pending.unlink()
        return
    os.replace(pending, passfile)
