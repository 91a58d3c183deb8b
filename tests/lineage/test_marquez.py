"""The pipeline's events sent over HTTP to a real Marquez, and lineage read back from its API."""

from __future__ import annotations

import httpx
import pytest

from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.lineage.marquez import Marquez, cache_dir
from vitalflow.services import free_port

pytestmark = pytest.mark.postgres


@pytest.fixture
def marquez(tmp_path, pg_server):
    if not (cache_dir() / ".complete").exists():
        pytest.skip(f"Marquez is not installed in {cache_dir()}: infra/marquez/install.sh could "
                    "not resolve io.github.marquezproject:marquez-api from Maven Central")
    settings = load_settings(paths={"home": tmp_path / "marquez-home"},
                             lineage={"marquez_port": free_port(),
                                      "marquez_admin_port": free_port()})
    server = Marquez(settings, pg_server)
    url = server.up()
    yield url
    assert server.down()


@pytest.mark.slow
def test_events_reach_marquez_and_lineage_reads_back(settings, generated, marquez):
    settings = load_settings(paths={"home": settings.paths.home},
                             database={"url": settings.database.url},
                             lineage={"mode": "openlineage", "transport": "http", "url": marquez})
    summary = pipeline.run(settings, generated)
    assert summary["lineage"]["sent"] == summary["lineage"]["emitted"] == 10
    api = f"{marquez}/api/v1"
    jobs = {j["name"] for j in httpx.get(f"{api}/namespaces/vitalflow/jobs", timeout=30)
            .json()["jobs"]}
    assert {"ingest", "refine", "derive_patient_bmi", "derive_age_band_summary"} <= jobs
    runs = httpx.get(f"{api}/namespaces/vitalflow/jobs/refine/runs", timeout=30).json()["runs"]
    assert runs[0]["state"] == "COMPLETED"
    graph = httpx.get(f"{api}/lineage", params={"nodeId": "job:vitalflow:refine"},
                      timeout=30).json()["graph"]
    assert any(n["id"].endswith(":refined.observation") for n in graph)


def test_marquez_database_and_config_without_the_server(tmp_path, pg_server):
    """What up() prepares before starting the JVM: its own role and database on the embedded
    PostgreSQL, and an owner-only config holding the only copy of the password."""
    import stat

    import psycopg

    settings = load_settings(paths={"home": tmp_path / "home"})
    server = Marquez(settings, pg_server)
    server.root.mkdir(parents=True)
    password = server._ensure_database()
    assert server._ensure_database() == password  # twice is the same as once
    server._render_config(free_port(), free_port(), password)
    assert stat.S_IMODE(server.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((server.root / "role.pw").stat().st_mode) == 0o600
    config = server.config_file.read_text()
    assert f"jdbc:postgresql://127.0.0.1:{pg_server.port}/marquez" in config
    assert "bindHost: 127.0.0.1" in config
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database "
                             "WHERE datname = 'marquez'").fetchone()
        superuser = conn.execute("SELECT rolsuper, rolcreatedb FROM pg_roles "
                                 "WHERE rolname = 'marquez'").fetchone()
    assert owner == ("marquez",) and superuser == (False, False)
    assert server.status()["running"] is False and server.api_url() == ""
    assert server.down() is False
