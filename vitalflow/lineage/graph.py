"""`vitalflow lineage graph`: jobs and datasets with column-level edges, as an HTML page with an
inline SVG (no script, no network) or a PNG of it rendered by headless Chromium."""

from __future__ import annotations

from html import escape
from pathlib import Path

from vitalflow.lineage.datasets import Dataset
from vitalflow.lineage.recorder import JOBS

BOX_WIDTH, ROW, GAP_X, GAP_Y, JOB_HEIGHT = 250, 18, 90, 30, 34
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _levels(datasets: dict[str, Dataset]) -> dict[str, int]:
    """Left-to-right column of every job ('job:name') and dataset (qualified table name)."""
    level: dict[str, int] = {}
    for _ in JOBS:  # longest path; the job graph is a short chain
        for job, (inputs, outputs) in JOBS.items():
            start = max((level.get(t.qualified_name, 0) for t in inputs), default=0)
            level[f"job:{job}"] = start + (1 if inputs else 0)
            for table in outputs:
                level[table.qualified_name] = level[f"job:{job}"] + 1
    return {key: value for key, value in level.items()
            if key.startswith("job:") or key in datasets}


def layout(datasets: dict[str, Dataset]) -> tuple[dict[str, tuple[int, int, int]], int, int]:
    """(x, y, height) of every node, and the picture's width and height."""
    placed: dict[str, tuple[int, int, int]] = {}
    bottom: dict[int, int] = {}
    for key, column in sorted(_levels(datasets).items(), key=lambda kv: (kv[1], kv[0])):
        height = JOB_HEIGHT if key.startswith("job:") else ROW * (
            len(datasets[key].table.columns) + 1)
        y = bottom.get(column, 20)
        placed[key] = (20 + column * (BOX_WIDTH + GAP_X), y, height)
        bottom[column] = y + height + GAP_Y
    return placed, 40 + (max(bottom) + 1) * (BOX_WIDTH + GAP_X), max(bottom.values()) + 20


def render_svg(datasets: dict[str, Dataset]) -> str:
    placed, width, height = layout(datasets)
    shapes, edges = [], []

    def column_y(table: str, column: str) -> int | None:
        names = [c.name for c in datasets[table].table.columns]
        if table not in placed or column not in names:
            return None
        return placed[table][1] + ROW * (names.index(column) + 1) + ROW // 2

    for key, (x, y, h) in placed.items():
        if key.startswith("job:"):
            shapes.append(f'<g class="job"><rect x="{x}" y="{y}" width="{BOX_WIDTH}" '
                          f'height="{h}" rx="17"/><text x="{x + BOX_WIDTH // 2}" y="{y + 22}" '
                          f'text-anchor="middle">{escape(key[4:])}</text></g>')
            continue
        dataset = datasets[key]
        rows = "".join(f'<text x="{x + 8}" y="{y + ROW * (i + 2) - 5}" class="col">'
                       f'{escape(c.name)}</text>' for i, c in enumerate(dataset.table.columns))
        shapes.append(f'<g class="dataset"><title>{escape(dataset.namespace)} '
                      f'{escape(dataset.name)}</title><rect x="{x}" y="{y}" width="{BOX_WIDTH}" '
                      f'height="{h}"/><rect class="head" x="{x}" y="{y}" width="{BOX_WIDTH}" '
                      f'height="{ROW}"/><text x="{x + 8}" y="{y + ROW - 5}" class="name">'
                      f'{escape(key)}</text>{rows}</g>')
    for job, (inputs, outputs) in JOBS.items():
        jx, jy, jh = placed[f"job:{job}"]
        for table in inputs:
            x, y, h = placed[table.qualified_name]
            edges.append(_curve(x + BOX_WIDTH, y + ROW // 2, jx, jy + jh // 2, "flow"))
        for table in outputs:
            x, y, h = placed[table.qualified_name]
            edges.append(_curve(jx + BOX_WIDTH, jy + jh // 2, x, y + ROW // 2, "flow"))
    for key, dataset in datasets.items():
        for column in dataset.table.columns:
            for source in column.upstream or ():
                table, _, field = source.rpartition(".")
                if table == key or table not in datasets:
                    continue  # computed within the same table (bmi from weight and height)
                start, end = column_y(table, field), column_y(key, column.name)
                if start is not None and end is not None:
                    edges.append(_curve(placed[table][0] + BOX_WIDTH, start, placed[key][0],
                                        end, "column", f"{source} → {key}.{column.name}"))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{"".join(edges)}{"".join(shapes)}</svg>')


def _curve(x1: int, y1: int, x2: int, y2: int, kind: str, title: str = "") -> str:
    middle = (x1 + x2) // 2
    tip = f"<title>{escape(title)}</title>" if title else ""
    return (f'<path class="{kind}" d="M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}">'
            f'{tip}</path>')


STYLE = """
body { font: 13px system-ui, sans-serif; margin: 16px; color: #1f2933; }
.dataset rect { fill: #fff; stroke: #52606d; } .dataset rect.head { fill: #d9e2ec; }
.name { font-weight: 600; } .col { font-size: 12px; fill: #3e4c59; }
.job rect { fill: #ffe8c2; stroke: #b7791f; } .job text { font-weight: 600; }
path { fill: none; } path.flow { stroke: #9aa5b1; stroke-width: 3; }
path.column { stroke: #2b6cb0; stroke-opacity: .35; stroke-width: 1.2; }
"""


def render_html(datasets: dict[str, Dataset], profile: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>vitalflow '
            f'lineage ({escape(profile)})</title><style>{STYLE}</style></head><body>'
            f'<h1>vitalflow lineage — profile {escape(profile)}</h1><p>Jobs (orange) read '
            f'and write datasets; blue lines join each column to the columns it is computed '
            f'from (hover for names and locations).</p>{render_svg(datasets)}</body></html>')


def write(datasets: dict[str, Dataset], profile: str, out: Path) -> Path:
    """out.html as is; out.png rendered by headless Chromium (Debian's, never downloaded)."""
    page = render_html(datasets, profile)
    if out.suffix == ".html":
        out.write_text(page, encoding="utf-8")
        return out
    if out.suffix != ".png":
        raise ValueError(f"cannot draw to {out.name}: use .html or .png")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            tab.set_content(page)
            tab.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    return out
