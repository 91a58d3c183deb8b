"""The benchmark's PostgreSQL: scratch databases on an external server, the embedded server's
process (for its CPU time), and checkpoints between stages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new, empty database on an external server: the benchmark must start from nothing."""
    import psycopg

    name = f"vitalflow_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as exc:
        raise SystemExit(f"VITALFLOW__DATABASE__URL is set, but its role cannot create the empty "
                         f"scratch database the benchmark needs: {exc}") from None
    try:
        yield _with_database(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _with_database(url: str, name: str) -> str:
    """The same server and credentials, another database; a URL stays a URL (the Iceberg
    catalog URL is built from it), a key=value string stays one."""
    from psycopg.conninfo import make_conninfo

    if "://" not in url:
        return make_conninfo(url, dbname=name)
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def checkpoint(admin_url: str) -> None:
    """Write back dirty pages now, so the next stage does not pay for the previous one's."""
    import psycopg

    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error:
        pass  # an external role without pg_checkpoint: measure as is
