"""The docs site in headless Chromium: pages load, search finds a column, links resolve, the
entity-relationship picture renders; screenshots are kept in tests/artifacts/dictionary."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from vitalflow.dictionary import as_dict
from vitalflow.dictionary.site import build_site

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dictionary"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site(as_dict(), out)
    return out


@pytest.fixture(scope="module")
def page():
    if not CHROMIUM.exists():
        pytest.skip("Chromium not at /usr/bin/chromium: `make install` installs it as root "
                    "(infra/browser/install.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def test_every_link_resolves(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) > 40
    for html in pages:
        for target in re.findall(r'href="([^"]+)"', html.read_text()):
            if urlsplit(target).scheme:
                continue
            path, _, anchor = unquote(target).partition("#")
            resolved = (html.parent / path).resolve() if path else html
            assert resolved.exists(), f"{html.relative_to(site)} links to missing {target}"
            if anchor:
                assert f'id="{anchor}"' in resolved.read_text(), f"{target} has no #{anchor}"
    for markdown in site.glob("markdown/**/*.md"):
        for target in re.findall(r"\]\(([^)#]+)[^)]*\)", markdown.read_text()):
            assert (markdown.parent / target).resolve().exists(), f"{markdown}: {target}"


def test_pages_load_search_finds_a_column_and_the_picture_renders(site, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console_errors = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    page.goto((site / "index.html").as_uri())
    assert page.title() == "vitalflow data dictionary"
    picture = page.locator("svg.er")
    box = picture.bounding_box()
    assert box and box["width"] > 600 and box["height"] > 400
    assert page.locator("svg.er g.er-table").count() >= 15
    assert page.locator("#er-refined\\.observation rect").first.bounding_box()["width"] > 100
    page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)

    page.fill("#search", "effective_at")
    hits = page.locator("#results a")
    hits.first.wait_for()
    assert any(text.startswith("refined.observation.effective_at")
               for text in hits.all_inner_texts()[:5])
    page.screenshot(path=str(ARTIFACTS / "search.png"))
    hits.filter(has_text="refined.observation.effective_at").first.click()
    page.wait_for_url(re.compile(r"refined\.observation\.html#effective_at$"))
    row = page.locator("tr#effective_at")
    assert "Observation.effectiveDateTime" in row.inner_text()
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header would cover the page's middle
    page.screenshot(path=str(ARTIFACTS / "table.png"), full_page=True)

    page.goto((site / "index.html").as_uri())
    page.locator("#er-derived\\.patient_bmi_latest").click()
    page.wait_for_url(re.compile(r"derived\.patient_bmi_latest\.html$"))
    assert "height_cm" in page.locator("main").inner_text()

    page.goto((site / "reasons" / "index.html").as_uri())
    page.get_by_role("link", name="unknown_patient").click()
    assert "observation_pending" in page.locator("main").inner_text()
    for html in sorted(site.rglob("*.html")):
        page.goto(html.as_uri())
        assert page.locator("h1").inner_text()
    assert console_errors == []


def test_site_builds_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from vitalflow.cli import app

    result = CliRunner().invoke(app, ["dictionary", "build", "--out", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "site" / "markdown" / "tables" / "refined.observation.md").exists()
    assert not (tmp_path / "site" / "tables" / "identity.patient_identity.html").exists()
