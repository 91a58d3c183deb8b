"""The SQL console in headless Chromium (Debian's, driven by Playwright) and its HTTP API, served
by uvicorn on a free loopback port."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.sql.conftest import ARTIFACTS
from vitalflow.services import free_port
from vitalflow.sql.console import create_app
from vitalflow.sql.users import UserStore

pytestmark = pytest.mark.postgres
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def console(profile_run):
    """(base URL, settings) of a console on the postgres profile with users ana and adm."""
    settings = profile_run("postgres")
    store = UserStore.from_settings(settings)
    store.add("ana", "analyst", PASSWORD)
    store.add("adm", "admin", PASSWORD)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", settings
    server.should_exit = True
    thread.join(timeout=30)


def test_api_needs_login_and_answers_with_rows(console):
    base, settings = console
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.post("/api/query", json={"sql": "SELECT 1 AS one"}).status_code == 401
        assert client.post("/api/login", json={"user": "ana", "password": "wrong"}
                           ).status_code == 401
        assert client.post("/api/login", json={"user": "ana", "password": PASSWORD}
                           ).status_code == 200
        answer = client.post("/api/query", json={
            "sql": "SELECT weight_category, count(*) AS n FROM derived.patient_bmi_latest "
                   "GROUP BY 1 ORDER BY 1"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["columns"] == ["weight_category", "n"] and body["row_count"] == len(
            body["rows"]) > 0
        refused = client.post("/api/query", json={"sql": "SELECT * FROM identity.patient_identity"})
        assert refused.status_code == 403 and "restricted" in refused.json()["detail"]
        assert client.post("/api/query", json={"sql": "SELECT * FROM raw.record"}
                           ).status_code == 403
        parquet = client.get(f"/api/results/{body['query_id']}.parquet")
        assert parquet.status_code == 200 and parquet.content[:4] == b"PAR1"
        history = client.get("/api/history").json()
        assert [h["outcome"] for h in history[:3]] == ["refused", "refused", "ok"]
        spec = client.get("/openapi.json").json()
        assert "/api/query" in spec["paths"]
        tables = {t["name"]: t for t in client.get("/api/tables").json()}
        assert "raw.record" not in tables and "meta.query_log" not in tables
        assert tables["derived.patient_bmi_latest"]["description"].startswith("Per patient")
        assert client.post("/api/saved", json={"name": "bmi", "sql": "SELECT 1 AS one"}
                           ).json() == {"bmi": "SELECT 1 AS one"}
        assert client.get("/api/saved").json() == {"bmi": "SELECT 1 AS one"}
        assert client.delete("/api/saved/bmi").json() == {}
    token = UserStore.from_settings(settings).new_token("adm")
    with httpx.Client(base_url=base, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        raw = client.post("/api/query", json={"sql": "SELECT count(*) AS n FROM raw.record"})
        assert raw.status_code == 200 and raw.json()["rows"][0]["n"] > 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed "
                    "(infra/sql/install.sh installs it)")
def test_console_in_chromium(console, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, _ = console
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        try:
            page = browser.new_page(accept_downloads=True, viewport={"width": 1400,
                                                                     "height": 900})
            page.set_default_timeout(60_000)
            page.goto(base)
            page.fill("#login-user", "ana")
            page.fill("#login-password", PASSWORD)
            page.click("#login-button")
            expect(page.locator("#who")).to_contain_text("ana (analyst)")
            # The data dictionary: a table's description and its columns.
            page.click("#tables li[data-table='derived.patient_bmi_latest']")
            expect(page.locator("#dictionary")).to_contain_text("WHO category")
            expect(page.locator("#dictionary")).to_contain_text("weight_kg")
            # ... and its lineage: the owner flow and where each column comes from.
            expect(page.locator("#dictionary")).to_contain_text("Written by derive_patient_bmi")
            expect(page.locator("#dictionary")).to_contain_text(
                "← from refined.observation.value")
            # Completion of a table name while typing.
            page.click("#editor")
            page.keyboard.type("SELECT * FROM derived.patient_b")
            expect(page.locator("#completions li").first).to_have_text(
                "derived.patient_bmi_latest")
            page.keyboard.press("Tab")
            expect(page.locator("#editor")).to_have_value(
                "SELECT * FROM derived.patient_bmi_latest")
            # An example query, run, its rows in the grid, paged.
            page.click("#examples li:has-text('Observations per measure')")
            page.click("#run")
            expect(page.locator("#status")).to_contain_text("rows")
            expect(page.locator("#grid tbody")).to_contain_text("body_weight")
            page.fill("#editor", "SELECT observation_id, measure, value FROM refined.observation "
                      "ORDER BY observation_id")
            page.keyboard.press("Control+Enter")
            expect(page.locator("#grid tbody tr")).to_have_count(50)
            expect(page.locator("#page")).to_contain_text("page 1 of")
            page.click("#next")
            expect(page.locator("#page")).to_contain_text("page 2 of")
            with page.expect_download() as download:
                page.click("#download-csv")
            saved = tmp_path / "result.csv"
            download.value.save_as(saved)
            lines = saved.read_text().splitlines()
            assert lines[0] == '"observation_id","measure","value"' and len(lines) > 51
            page.click("#examples li:has-text('BMI by age band')")
            page.click("#run")
            expect(page.locator("#grid tbody")).to_contain_text("18-29")
            page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)
            # A refused query says why.
            page.fill("#editor", "SELECT * FROM identity.patient_identity")
            page.click("#run")
            expect(page.locator("#error")).to_contain_text("restricted")
            expect(page.locator("#history li").first).to_contain_text("refused")
            page.screenshot(path=str(ARTIFACTS / "console-refused.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "console.png").stat().st_size > 10_000
