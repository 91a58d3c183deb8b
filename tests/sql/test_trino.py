"""The real Trino (installed by infra/trino/install.sh, started here on a free loopback port):
the example suite returns the embedded engine's rows, with refined in PostgreSQL (postgresql
catalog) and derived in Iceberg on S3 (iceberg catalog, the JDBC tables pyiceberg writes); and
Trino's own rules keep it read-only and away from identity for clients that bypass vitalflow."""

from __future__ import annotations

import shutil
import uuid

import httpx
import pytest

from tests.conformance.profiles import fresh_database
from tests.sql.conftest import normalised, run_suite
from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.object_store import credentials_file
from vitalflow.services import free_port
from vitalflow.sql.service import SqlService
from vitalflow.sql.trino import TrinoServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def trino(request, tmp_path_factory, pg_server, s3_server, sql_generated):
    """Settings with refined in PostgreSQL and derived in Iceberg, the pipeline run, Trino up."""
    probe = TrinoServer(load_settings())
    if not (probe.home / "lib").is_dir():
        pytest.skip(f"Trino is not installed in {probe.home} (infra/trino/install.sh needs "
                    "Java 24+ and Maven)")
    home = tmp_path_factory.mktemp("sql-trino")
    (home / "secrets").mkdir(mode=0o700)
    shutil.copy(credentials_file(s3_server.root), credentials_file(home))
    with fresh_database(pg_server) as url:
        settings = load_settings(
            paths={"home": home}, database={"url": url},
            storage={"profile": "split", "profiles": {"split": {
                "raw": "parquet", "refined": "postgresql", "derived": "iceberg"}}},
            s3={"endpoint": s3_server.endpoint},
            iceberg={"warehouse": f"s3://{s3_server.bucket}/sql-{uuid.uuid4().hex[:12]}"},
            sql={"trino_port": free_port()})
        pipeline.run(settings, sql_generated)
        server = TrinoServer(settings)
        server.up()
        try:
            yield settings, server
        finally:
            server.down()


def test_query_suite_on_trino_returns_the_embedded_engines_rows(trino, profile_run):
    settings, _ = trino
    expected = run_suite(profile_run("postgres"))
    assert run_suite(settings, engine="trino") == expected
    assert run_suite(settings, role="analyst", engine="trino") == expected
    assert run_suite(settings, engine="duckdb") == expected


def test_trino_config_is_owner_only_and_on_loopback(trino):
    settings, server = trino
    for path in (server.etc / "catalog").glob("*.properties"):
        assert path.stat().st_mode & 0o077 == 0, path
    assert {p.stem for p in (server.etc / "catalog").glob("*.properties")} == {
        "postgresql", "iceberg"}
    assert server.url.startswith("http://127.0.0.1:")
    assert server.status()["running"]


def _direct(server: TrinoServer, sql: str, user: str = "analyst") -> dict:
    """A query sent straight to Trino, as any Trino client (DBeaver, the CLI) would."""
    with httpx.Client(timeout=60) as client:
        body = client.post(f"{server.url}/v1/statement", content=sql,
                           headers={"X-Trino-User": user}).json()
        while "nextUri" in body and "error" not in body:
            body = client.get(body["nextUri"]).json()
    return body


@pytest.mark.parametrize("sql", [
    "SELECT * FROM postgresql.identity.patient_identity",
    "SELECT * FROM postgresql.meta.run",
    "CREATE TABLE iceberg.derived.escaped AS SELECT 1 AS a",
    "DELETE FROM postgresql.refined.patient",
    "INSERT INTO iceberg.derived.age_band_summary (age_band) VALUES ('x')",
])
def test_trino_itself_refuses_writes_and_restricted_schemas(trino, sql):
    _, server = trino
    error = _direct(server, sql, user="admin").get("error")
    assert error is not None, sql
    assert "Access Denied" in error["message"] or "read-only" in error["message"].lower(), error


def test_refusals_and_timeouts_through_vitalflow_on_trino(trino):
    settings, _ = trino
    service = SqlService(settings)
    try:
        from vitalflow.sql.policy import QueryRefused

        with pytest.raises(QueryRefused, match="restricted"):
            service.query("SELECT * FROM identity.patient_identity", "ana", "analyst", "trino")
        rows = service.query("SELECT count(*) AS n FROM refined.observation o "
                             "JOIN derived.patient_bmi_latest b ON o.patient_key = b.patient_key",
                             "ana", "analyst", "trino").rows
        assert normalised(rows)[0][0] > 0
    finally:
        service.close()
