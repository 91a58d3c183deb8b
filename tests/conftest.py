"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from vitalflow.config import Settings, load_settings
from vitalflow.services import EmbeddedPostgres, free_port

pytest_plugins = ("ci_strict",)  # CI=true: a skip for want of ../shared etc. fails

SHARED = Path(__file__).resolve().parents[2] / "shared"
SYNTHEA = SHARED / "data" / "synthea-r4"
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# One pseudonymisation key for the whole session (and its subprocesses), so runs in different
# homes give the same pseudonyms; tests of key handling set or remove it themselves.
os.environ.setdefault("VITALFLOW_PSEUDONYM_KEY", "vitalflow-test-key-" + "0" * 40)


def _session_service(service_class, prefix: str):
    """A service in its own temporary folder on a free port, up for the whole session. Not
    under pytest's basetemp: another pytest session may prune it while the service runs."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = service_class(root, free_port())
    server.up()
    yield server
    server.down()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> EmbeddedPostgres:
    yield from _session_service(EmbeddedPostgres, "vitalflow-test-pg-")


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER vitalflow")
    yield pg_server.url(name)
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for a pipeline writing to a private database and raw folder."""
    return load_settings(paths={"home": tmp_path / "home"}, database={"url": database_url})


@pytest.fixture
def synthea() -> Path:
    if not (SYNTHEA / "Observation.ndjson.gz").exists():
        pytest.skip(f"Synthea reference data not found at {SYNTHEA} (../shared is beside the "
                    "project in CI and on developer machines only)")
    return SYNTHEA


# CI explores a fixed set of examples (no flaky reds); `--hypothesis-profile thorough` explores
# many more, with fresh randomness, when hunting bugs.
from hypothesis import settings as hypothesis_settings  # noqa: E402

hypothesis_settings.register_profile("default", max_examples=25, derandomize=True)
hypothesis_settings.register_profile("thorough", max_examples=300)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def s3_server():
    """The embedded S3 object store (SeaweedFS) on free loopback ports, for the whole session."""
    from vitalflow.object_store import SeaweedFS

    yield from _session_service(SeaweedFS, "vitalflow-test-s3-")
