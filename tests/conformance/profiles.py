"""Settings that place the layers as each storage profile under test does."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from vitalflow.config import Settings, load_settings
from vitalflow.object_store import credentials_file


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
    return {"placement": {"raw": "parquet", "refined": "postgresql", "derived": "postgresql"}}


def _postgres_portable(request, home: Path) -> dict:
    """Refined and derived in another PostgreSQL database than the control one: the portable
    refine and derive run over the interface, as they do for any engine."""
    database = fresh_database(request.getfixturevalue("pg_server"))
    other = database.__enter__()
    request.addfinalizer(lambda: database.__exit__(None, None, None))
    return {"placement": {"raw": "parquet", "refined": other, "derived": other}}


def _lakehouse(request, home: Path) -> dict:
    """All three layers as Iceberg tables on the session's SeaweedFS, catalog in the control
    database, under a warehouse prefix of their own."""
    server = request.getfixturevalue("s3_server")
    (home / "secrets").mkdir(parents=True, exist_ok=True)
    shutil.copy(credentials_file(server.root), credentials_file(home))
    return {"placement": {"raw": "iceberg", "refined": "iceberg", "derived": "iceberg"},
            "s3": {"endpoint": server.endpoint},
            "iceberg": {"warehouse": f"s3://{server.bucket}/pipeline-{uuid.uuid4().hex[:12]}"}}


def _clickhouse(request, home: Path) -> dict:
    """Refined and derived in the in-process ClickHouse engine (one data path per process),
    under database names of their own."""
    from tests.conformance.backend_clickhouse import chdb_url

    return {"placement": {"raw": "parquet", "refined": "clickhouse", "derived": "clickhouse"},
            "clickhouse": {"url": chdb_url(), "database_prefix": f"t{uuid.uuid4().hex[:12]}_"}}


def _mixed(request, home: Path) -> dict:
    """As the built-in profile `mixed`: raw on Iceberg, refined in the control PostgreSQL,
    derived in ClickHouse."""
    lakehouse, clickhouse = _lakehouse(request, home), _clickhouse(request, home)
    return {**lakehouse, **clickhouse,
            "placement": {"raw": "iceberg", "refined": "postgresql", "derived": "clickhouse"}}


# profile name -> factory(request, home) of its placement (and engine settings)
PROFILES = {
    "postgres": _postgres,
    "postgres-portable": _postgres_portable,
    "lakehouse": _lakehouse,
    "clickhouse": _clickhouse,
    "mixed": _mixed,
}


def profile_settings(name: str, home: Path, control_url: str, request) -> Settings:
    made = PROFILES[name](request, home)
    placement = made.pop("placement", made)
    return load_settings(paths={"home": home}, database={"url": control_url},
                         storage={"profile": "under_test", "profiles": {"under_test": placement}},
                         **made)
