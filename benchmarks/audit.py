"""Audit trail costs: a pipeline run with auditing on and off, appends per second, and
`audit verify` over a million events. `python -m benchmarks.audit [--size 100k] [--events 1m]`."""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from rich.console import Console

from benchmarks.inputs import DEFAULT_DATA, generated_input, parse_size
from benchmarks.machine import machine_info
from vitalflow.audit import runs
from vitalflow.audit.schema import GENESIS, ensure_audit_schema
from vitalflow.audit.trail import AuditTrail
from vitalflow.audit.verify import verify
from vitalflow.config import load_settings
from vitalflow.services import EmbeddedPostgres, free_port

RESULTS = Path(__file__).resolve().parent / "results"
console = Console(stderr=True)


class _Clock:
    """Seconds spent inside the audit hooks of a run (the overhead, measured where it is paid)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._originals: list[tuple[object, str, object]] = []

    def restore(self) -> None:
        for owner, name, original in self._originals:
            setattr(owner, name, original)

    def wrap(self, owner, name: str, context: bool = False) -> None:
        original = getattr(owner, name)
        self._originals.append((owner, name, original))
        clock = self

        if context:
            @contextmanager
            def timed_context(*args, **kwargs):
                manager = original(*args, **kwargs)
                start = time.perf_counter()
                manager.__enter__()
                clock.seconds += time.perf_counter() - start
                try:
                    yield
                finally:
                    start = time.perf_counter()
                    manager.__exit__(None, None, None)
                    clock.seconds += time.perf_counter() - start
            setattr(owner, name, timed_context)
            return

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - start
        setattr(owner, name, timed)


def _database(server: EmbeddedPostgres) -> str:
    name = f"audit_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER vitalflow")
    return server.url(name)


def run_overhead(server: EmbeddedPostgres, source: Path, scratch: Path, repeats: int) -> dict:
    """Whole runs on fresh databases, audit on and off alternately; plus the time spent in the
    audit hooks of the audited runs, which noise between runs does not blur."""
    from vitalflow import pipeline

    seconds: dict[str, list[float]] = {"on": [], "off": []}
    hooks = []
    # Not measured: the first run in a process pays for imports and warm-up.
    pipeline.run(load_settings(paths={"home": scratch / "warm-up"},
                               database={"url": _database(server)}), source)
    clock = _Clock()
    for name in ("started", "finished", "rebuild"):
        clock.wrap(runs.RunAudit, name)
    clock.wrap(runs.RunAudit, "ingest", context=True)
    try:
        _measure(server, source, scratch, repeats, clock, seconds, hooks)
    finally:
        clock.restore()
    on, off = statistics.median(seconds["on"]), statistics.median(seconds["off"])
    return {"runs_seconds": seconds, "median_on": on, "median_off": off,
            "difference_percent": 100 * (on - off) / off,
            "hook_seconds": hooks, "hook_percent_of_run": 100 * statistics.median(hooks) / on}


def _measure(server, source, scratch, repeats, clock, seconds, hooks) -> None:
    from vitalflow import pipeline

    for attempt in range(repeats):
        for mode in ("on", "off") if attempt % 2 == 0 else ("off", "on"):
            settings = load_settings(paths={"home": scratch / f"home-{attempt}-{mode}"},
                                     database={"url": _database(server)},
                                     audit={"enabled": mode == "on"})
            clock.seconds = 0.0
            start = time.perf_counter()
            pipeline.run(settings, source)
            seconds[mode].append(time.perf_counter() - start)
            if mode == "on":
                hooks.append(clock.seconds)
            console.print(f"run {attempt + 1} audit {mode}: {seconds[mode][-1]:.1f} s")


def synthetic_events(url: str, events: int) -> float:
    """A chain of realistic events written with COPY (hashes computed as audit.append does);
    returns the seconds it took (not a figure of interest, printed for orientation)."""
    start = time.perf_counter()
    prev = GENESIS
    with psycopg.connect(url) as conn:
        ensure_audit_schema(conn)
        with conn.cursor().copy("COPY audit.event (seq, prev_hash, hash, body) FROM STDIN") as copy:
            for seq in range(1, events + 1):
                body = json.dumps({
                    "action": "ingest.batch", "outcome": "succeeded", "host": "bench",
                    "pid": 4242, "os_user": "bench", "db_role": "vitalflow",
                    "run_id": f"20261129T000000-{seq // 50:08x}", "target": "raw",
                    "at": f"2026-11-29T00:00:00.{seq % 1_000_000:06d}Z",
                    "params": {"file": f"Observation.{seq:07d}.ndjson",
                               "file_sha256": hashlib.sha256(str(seq).encode()).hexdigest()},
                    "counts": {"records": seq % 25_000}})
                digest = hashlib.sha256(f"{seq}|{prev}|{body}".encode()).hexdigest()
                copy.write_row((seq, prev, digest, body))
                prev = digest
    return time.perf_counter() - start


def verify_speed(server: EmbeddedPostgres, events: int, scratch: Path, repeats: int) -> dict:
    url = _database(server)
    written = synthetic_events(url, events)
    console.print(f"{events:,} synthetic events written in {written:.1f} s")
    settings = load_settings(paths={"home": scratch / "verify-home"}, database={"url": url})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE audit.event")
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            verdict = verify(conn, settings)
            timings.append(time.perf_counter() - start)
    assert verdict.ok and verdict.events == events, verdict.problems
    trail = AuditTrail(settings, url)
    start = time.perf_counter()
    for i in range(2_000):
        trail.record("bench.append", counts={"i": i})
    appends = 2_000 / (time.perf_counter() - start)
    trail.close()
    return {"events": events, "verify_seconds": timings, "median_seconds": statistics.median(
        timings), "appends_per_second_one_writer": appends}


def report(result: dict) -> str:
    run, check = result["run"], result["verify"]
    lines = [f"# Audit trail costs ({result['measured_at']})", "",
             f"{result['machine']['cpu_count']} cores, {result['machine']['memory_gib']:.0f} GiB;"
             f" commit {result['machine']['git_commit']}. {result['note']}", "",
             f"## Pipeline run on generated {result['size']} Observations", "",
             "| | median seconds | runs |", "|---|---:|---|",
             f"| audit on | {run['median_on']:.2f} | "
             f"{', '.join(f'{s:.2f}' for s in run['runs_seconds']['on'])} |",
             f"| audit off (`[audit] enabled = false`) | {run['median_off']:.2f} | "
             f"{', '.join(f'{s:.2f}' for s in run['runs_seconds']['off'])} |", "",
             f"Difference of the medians: {run['difference_percent']:+.1f}%: whole runs on a "
             "shared machine vary far more than the audit costs (see the runs), so the time "
             "spent inside the audit hooks is the figure to read:",
             f"time inside the audit hooks of the audited runs "
             f"{', '.join(f'{s:.3f}' for s in run['hook_seconds'])} s, "
             f"**{run['hook_percent_of_run']:.2f}% of the run** (target ≤ 2%).", "",
             f"## `audit verify` over {check['events']:,} events", "",
             f"Median **{check['median_seconds']:.2f} s** (runs: "
             f"{', '.join(f'{s:.2f}' for s in check['verify_seconds'])}; target < 10 s): every "
             "hash recomputed with sha256() in the server, each event joined to its predecessor "
             "by key, anchors checked.", "",
             f"Appends through `audit.append`, one writer on one connection: "
             f"{check['appends_per_second_one_writer']:,.0f} events/s.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="100k", help="Observations in the run (10k, 100k, 1m)")
    parser.add_argument("--events", default="1m", help="Synthetic events to verify")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--note", default="", help="A sentence for the report (e.g. why 100k)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vitalflow-audit-bench-") as tmp:
        scratch = Path(tmp)
        server = EmbeddedPostgres(scratch / "pg", free_port())
        server.up()
        try:
            source = generated_input(args.size, DEFAULT_DATA, console)
            result = {"measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ"),
                      "size": args.size, "machine": machine_info(),
                      "note": args.note,
                      "run": run_overhead(server, source, scratch, args.repeats),
                      "verify": verify_speed(server, parse_size(args.events), scratch, 3)}
        finally:
            server.down()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"audit-{stamp}.json").write_text(json.dumps(result, indent=1, default=str))
    (args.out / "audit-latest.md").write_text(report(result))
    print(report(result))


if __name__ == "__main__":
    main()
