"""A status page served by vitalflow: the dashboard panels and firing alerts, from Prometheus."""

from __future__ import annotations

import html
import re

import httpx
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from vitalflow.monitoring.panels import PANELS, Panel

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#f6f7f9;color:#1c2430}
h1{font-size:1.4rem;margin:0 0 .3rem} h2{font-size:1.05rem;margin:1.2rem 0 .5rem;color:#44546a}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:1rem}
.panel{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:.8rem 1rem}
.panel h3{font-size:.95rem;margin:0 0 .6rem}
.row{display:grid;grid-template-columns:12rem 1fr 6.5rem;gap:.5rem;align-items:center;
 font-size:.85rem;margin:.2rem 0}
.bar{height:.9rem;background:#3b82f6;border-radius:3px;min-width:2px}
.value{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:#8a94a6;font-size:.85rem} .error{color:#b42318}
.alert{padding:.4rem .6rem;border-radius:6px;margin:.3rem 0;font-size:.9rem}
.critical{background:#fde8e8} .warning{background:#fff4e0} .ok{background:#e7f6ec}
"""


def _format(value: float, unit: str) -> str:
    if unit == "bytes":
        for suffix in ("B", "kB", "MB", "GB", "TB"):
            if abs(value) < 1024 or suffix == "TB":
                return f"{value:,.0f} {suffix}" if suffix == "B" else f"{value:,.1f} {suffix}"
            value /= 1024
    if unit == "s":
        return f"{value / 3600:,.1f} h" if value >= 3600 else f"{value:,.2f} s"
    if unit == "percentunit":
        return f"{value:.1%}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}"


def _legend(template: str, labels: dict) -> str:
    text = re.sub(r"\{\{(\w+)\}\}", lambda m: labels.get(m.group(1), ""), template).strip()
    return text or "value"


class PrometheusReader:
    """Instant queries and alerts over Prometheus' HTTP API."""

    def __init__(self, base_url: str, timeout: float = 5.0):
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def _get(self, path: str, **params) -> dict:
        response = httpx.get(f"{self.base_url}{path}", params=params, timeout=self.timeout)
        response.raise_for_status()
        return response.json()["data"]

    def panel(self, panel: Panel) -> dict:
        try:
            result = self._get("/api/v1/query", query=panel.query)["result"]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            return {"title": panel.title, "section": panel.section,
                    "error": f"Prometheus not answering ({type(exc).__name__})", "series": []}
        series = sorted(({"name": _legend(panel.legend, r["metric"]),
                          "value": float(r["value"][1])} for r in result),
                        key=lambda s: s["name"])
        return {"title": panel.title, "section": panel.section, "unit": panel.unit,
                "series": series}

    def alerts(self) -> list[dict]:
        try:
            return self._get("/api/v1/alerts")["alerts"]
        except (httpx.HTTPError, KeyError, ValueError):
            return []


def _panel_html(panel: dict) -> str:
    title = html.escape(panel["title"])
    if panel.get("error"):
        return f'<div class="panel"><h3>{title}</h3><p class="error">{panel["error"]}</p></div>'
    if not panel["series"]:
        return f'<div class="panel"><h3>{title}</h3><p class="empty">no data yet</p></div>'
    top = max(abs(s["value"]) for s in panel["series"]) or 1
    rows = "".join(
        f'<div class="row"><span>{html.escape(s["name"])}</span>'
        f'<div class="bar" style="width:{100 * abs(s["value"]) / top:.1f}%"></div>'
        f'<span class="value">{_format(s["value"], panel["unit"])}</span></div>'
        for s in panel["series"])
    return f'<div class="panel"><h3>{title}</h3>{rows}</div>'


def _alerts_html(alerts: list[dict]) -> str:
    firing = [a for a in alerts if a.get("state") == "firing"]
    if not firing:
        return '<div class="alert ok">No alert firing.</div>'
    return "".join(
        f'<div class="alert {html.escape(a["labels"].get("severity", "warning"))}">'
        f'<b>{html.escape(a["labels"].get("alertname", "?"))}</b> '
        f'{html.escape(a.get("annotations", {}).get("summary", ""))}</div>' for a in firing)


def render(panels: list[dict], alerts: list[dict], prometheus_url: str) -> str:
    sections: dict[str, list[str]] = {}
    for panel in panels:
        sections.setdefault(panel["section"] or "Other", []).append(_panel_html(panel))
    body = "".join(f'<h2>{html.escape(name)}</h2><div class="grid">{"".join(parts)}</div>'
                   for name, parts in sections.items())
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="30"><title>vitalflow status</title>'
            f'<style>{STYLE}</style></head><body><h1>vitalflow status</h1>'
            f'<p class="empty">From Prometheus at {html.escape(prometheus_url)}; refreshes every '
            f'30 s.</p><h2>Alerts</h2>{_alerts_html(alerts)}{body}</body></html>')


def create_app(prometheus_url: str) -> FastAPI:
    reader = PrometheusReader(prometheus_url)
    app = FastAPI(title="vitalflow status", docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return render([reader.panel(p) for p in PANELS], reader.alerts(), prometheus_url)

    @app.get("/api/panels")
    def panels() -> JSONResponse:
        return JSONResponse({"panels": [reader.panel(p) for p in PANELS],
                             "alerts": reader.alerts()})

    return app
