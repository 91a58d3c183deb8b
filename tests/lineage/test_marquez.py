"""The pipeline's events sent over HTTP to a real Marquez, and lineage read back from its API."""

from __future__ import annotations

import httpx
import pytest

from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.lineage.marquez import Marquez, cache_dir
from vitalflow.services import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


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
