"""Self-serve SQL through the console API: latency p50/p95 of the example queries on DuckDB and
on Trino, 8 concurrent users (locust), and Trino's start time. JSON + Markdown in
benchmarks/results/. python -m benchmarks.sql_console [--size 1m] [--reps 10] [--users 8]"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console

from benchmarks.inputs import DEFAULT_DATA, PROJECT_ROOT, generated_input
from benchmarks.machine import machine_info
from benchmarks.report import percentile
from vitalflow.config import load_settings
from vitalflow.services import free_port
from vitalflow.sql.examples import BY_NAME, EXAMPLES, Example

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
WORK = PROJECT_ROOT / "benchmarks" / "work"
console = Console(stderr=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="1m", help="generated Observations: 10k, 100k, 1m")
    parser.add_argument("--reps", type=int, default=10, help="timed runs per query and engine")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30, help="locust run per engine")
    args = parser.parse_args(argv)
    home = WORK / f"sql-{args.size}"
    env = {**os.environ, "VITALFLOW__PATHS__HOME": str(home),
           "VITALFLOW__DATABASE__EMBEDDED_PORT": str(free_port()),
           "VITALFLOW__SQL__TRINO_PORT": str(free_port())}
    os.environ.update(env)
    settings = load_settings()
    report = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "size": args.size,
              "machine": machine_info(), "profile": settings.storage.profile,
              "load_average_at_start": [round(x, 1) for x in os.getloadavg()]}
    _load(settings, args.size, home, report)
    from vitalflow.sql.trino import TrinoServer

    trino = TrinoServer(settings)
    engines = ["duckdb"]
    if (trino.home / "lib").is_dir():
        trino.down()
        started = time.perf_counter()
        trino.up()
        report["trino_start_seconds"] = round(time.perf_counter() - started, 1)
        engines.append("trino")
    else:
        report["trino_start_seconds"] = None
        report["trino_note"] = f"not installed in {trino.home}"
    server, url, token = _console(settings, env)
    try:
        report["latency"] = {engine: _latency(url, token, engine, args.reps)
                             for engine in engines}
        report["concurrency"] = [_locust(url, token, args.users, args.seconds, engine, env)
                                 for engine in engines]
        report["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    finally:
        server.terminate()
        server.wait(30)
        trino.down()
        from vitalflow.storage import embedded_postgres

        embedded_postgres(settings).down()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"sql-console-{stamp}.json").write_text(json.dumps(report, indent=1))
    (RESULTS / "sql-console-latest.md").write_text(markdown(report))
    console.print(markdown(report))
    return report


def _load(settings, size: str, home: Path, report: dict) -> None:
    """The generated set through the pipeline once (kept between benchmark runs)."""
    from vitalflow import pipeline

    source = generated_input(size, DEFAULT_DATA, console)
    marker = home / "sql-bench-loaded"
    if marker.exists() and marker.read_text() == str(source):
        console.print(f"[dim]reusing the pipeline's tables in {home}[/]")
    else:
        started = time.perf_counter()
        summary = pipeline.run(settings, source)
        report["pipeline_seconds"] = round(time.perf_counter() - started, 1)
        marker.write_text(str(source))
        report["observations_refined"] = summary["counts"]["Observation"]["refined"]


def _console(settings, env: dict) -> tuple[subprocess.Popen, str, str]:
    """The console as its own process, with a benchmark user and its token."""
    from vitalflow.sql.users import UserStore

    store = UserStore.from_settings(settings)
    store.add("bench", "analyst", secrets.token_urlsafe(16))
    token = store.new_token("bench")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "vitalflow.cli", "console", "--port",
                               str(port)], env=env, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/openapi.json", timeout=5).status_code == 200:
                return server, url, token
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.terminate()
            raise RuntimeError("the console did not start")
        time.sleep(0.5)


def _queries(url: str, token: str) -> list[Example]:
    """The examples, plus one patient's history by a literal pseudonym, as people type it (the
    example's sub-query keeps DuckDB from pushing the filter down to PostgreSQL)."""
    with httpx.Client(base_url=url, timeout=300,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        key = client.post("/api/query", json={"sql": "SELECT min(patient_key) AS k FROM "
                                              "refined.patient"}).json()["rows"][0]["k"]
    literal = BY_NAME["patient_history"].sql.replace(
        "(SELECT min(patient_key) FROM refined.patient)", f"'{key}'")
    return [*EXAMPLES, Example("patient_history_literal", "by a literal pseudonym", literal)]


def _latency(url: str, token: str, engine: str, reps: int) -> dict:
    """Per query: one warm-up, then reps timed requests (client-side wall time)."""
    figures = {}
    with httpx.Client(base_url=url, timeout=300,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        for example in _queries(url, token):
            samples, failures, rows = [], [], None
            for attempt in range(reps + 1):
                started = time.perf_counter()
                answer = client.post("/api/query", json={"sql": example.sql, "engine": engine})
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:  # e.g. 408: the analyst's statement timeout
                    failures.append(f"{answer.status_code}: {answer.json().get('detail')}")
                    continue
                rows = answer.json()["row_count"]
                if attempt:
                    samples.append(elapsed)
            figures[example.name] = {
                "p50_ms": round(percentile(samples, 50), 1) if samples else None,
                "p95_ms": round(percentile(samples, 95), 1) if samples else None,
                "rows": rows, "failures": failures}
            console.print(f"{engine} {example.name}: {figures[example.name]}")
    return figures


def _locust(url: str, token: str, users: int, seconds: float, engine: str, env: dict) -> dict:
    result = subprocess.run([sys.executable, "-m", "benchmarks.sql_locust", url, token,
                             str(users), str(seconds), engine], env=env, capture_output=True,
                            text=True, timeout=seconds + 600, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"locust failed: {result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    console.print(f"{engine} x{users}: {figures}")
    return figures


def markdown(report: dict) -> str:
    lines = [f"# Self-serve SQL through the console API ({report['started']})", "",
             f"Generated {report['size']} set ({report.get('observations_refined', 'reused')} "
             f"refined observations), profile {report['profile']}, machine: "
             f"{report['machine'].get('cpu_count')} CPUs, load average "
             f"{report['load_average_at_start'][0]} at start and "
             f"{report.get('load_average_at_end', ['?'])[0]} at the end (a shared machine). "
             "Client-side wall time of POST /api/query "
             "as an analyst (policy check, engine, JSON), one warm-up then the timed runs.", "",
             f"Trino start (JVM to ready): {report['trino_start_seconds']} s", "",
             "| query | " + " | ".join(f"{e} p50 ms | {e} p95 ms" for e in report["latency"])
             + " | rows |",
             "|---|" + "---:|---:|" * len(report["latency"]) + "---:|"]
    for name in report["latency"]["duckdb"]:
        cells = []
        for engine in report["latency"]:
            figure = report["latency"][engine][name]
            failed = f" ({len(figure['failures'])} failed)" if figure["failures"] else ""
            cells += [str(figure["p50_ms"]), str(figure["p95_ms"]) + failed]
        rows = report["latency"]["duckdb"][name]["rows"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {rows} |")
    lines += ["", "| engine | users | seconds | requests | failures | req/s | p50 ms | p95 ms |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in report["concurrency"]:
        lines.append(f"| {c['engine']} | {c['users']} | {c['seconds']:g} | {c['requests']} | "
                     f"{c['failures']} | {c['rps']} | {c['p50_ms']} | {c['p95_ms']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
