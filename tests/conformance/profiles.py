"""Settings that place the layers as each storage profile under test does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from vitalflow.config import Settings, load_settings


@contextmanager
def fresh_database(pg_server) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER vitalflow")
    try:
        yield pg_server.url(name)
    finally:
        with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _postgres(request, home: Path) -> dict:
    return {"raw": "parquet", "refined": "postgresql", "derived": "postgresql"}


def _postgres_portable(request, home: Path) -> dict:
    """Refined and derived in another PostgreSQL database than the control one: the portable
    refine and derive run over the interface, as they do for any engine."""
    stack = request.getfixturevalue("pg_server")
    url = request.getfixturevalue("database_url")
    other = f"{url.split('?')[0].rsplit('/', 1)[0]}/{_second_database(stack, request)}"
    other += "?" + url.split("?", 1)[1] if "?" in url else ""
    return {"raw": "parquet", "refined": other, "derived": other}


def _second_database(pg_server, request) -> str:
    context = fresh_database(pg_server)
    url = context.__enter__()
    request.addfinalizer(lambda: context.__exit__(None, None, None))
    return url.split("?")[0].rsplit("/", 1)[1]


# profile name -> placement factory(request, home)
PROFILES = {
    "postgres": _postgres,
    "postgres-portable": _postgres_portable,
}


def profile_settings(name: str, home: Path, control_url: str, request) -> Settings:
    placement = PROFILES[name](request, home)
    return load_settings(paths={"home": home}, database={"url": control_url},
                         storage={"profile": "under_test", "profiles": {"under_test": placement}})
