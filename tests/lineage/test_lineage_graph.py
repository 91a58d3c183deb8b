"""`vitalflow lineage graph`: the picture renders in headless Chromium (screenshot kept)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitalflow.cli import app

pytestmark = pytest.mark.postgres
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "lineage"


def test_graph_html_and_png(settings, monkeypatch):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    monkeypatch.setenv("VITALFLOW__PATHS__HOME", str(settings.paths.home))
    monkeypatch.setenv("VITALFLOW__DATABASE__URL", settings.database.url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    html = ARTIFACTS / "lineage.html"
    result = CliRunner().invoke(app, ["lineage", "graph", "--out", str(html)])
    assert result.exit_code == 0, result.output
    page = html.read_text()
    for name in ("job", "derive_patient_bmi", "refined.observation",
                 "derived.patient_bmi_latest", "raw.record"):
        assert name in page
    assert "refined.observation.value → derived.patient_bmi_latest.height_cm" in page
    assert page.count('class="column"') > 40
    png = ARTIFACTS / "lineage.png"
    result = CliRunner().invoke(app, ["lineage", "graph", "--out", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
