"""Concurrent readers: locust users each running the analytical queries back to back against
one profile. Run as its own process (locust patches the standard library with gevent):
python -m benchmarks.concurrency CASE.json USERS SECONDS; prints one JSON line."""

from __future__ import annotations

import locust  # noqa: F401 - imported first: it monkey-patches sockets for gevent

import json
import random
import sys
import time
from pathlib import Path

import gevent
from locust import User, constant, task
from locust.env import Environment

from benchmarks.queries import QUERIES
from vitalflow.config import load_settings
from vitalflow.storage import open_layers

_context: dict = {}
_window = {"open": True, "in_flight": 0}  # users start queries only while the window is open
_samples: dict[str, list[float]] = {name: [] for name in QUERIES}
_errors: dict[str, list[str]] = {name: [] for name in QUERIES}


class AnalystUser(User):
    """Issues the next query as soon as the last one answered (a closed loop, no think time),
    so the figures show what the engine sustains, not how patient the users are.

    A response time runs from when the user was ready to ask (its previous answer) to the
    answer: an engine whose calls block the whole process (chdb, pyiceberg's reads) makes the
    other users wait before their call even starts, and that wait is theirs too."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.rng = random.Random(id(self))
        self.ready_at = time.perf_counter()

    def _query(self, name: str) -> None:
        if not _window["open"]:
            gevent.sleep(0.05)
            return
        _window["in_flight"] += 1
        try:
            self._timed(name)
        finally:
            _window["in_flight"] -= 1

    def _timed(self, name: str) -> None:
        started = self.ready_at
        error = None
        rows = 0
        try:
            rows = QUERIES[name](_context["layers"], _context["settings"], _context["params"],
                                 self.rng).num_rows
        except Exception as exc:  # every failure is counted and reported, never fatal
            error = exc
            _errors[name].append(type(exc).__name__)
        self.ready_at = time.perf_counter()
        elapsed_ms = (self.ready_at - started) * 1000
        if error is None:
            _samples[name].append(elapsed_ms)
        self.environment.events.request.fire(request_type="query", name=name,
                                             response_time=elapsed_ms, response_length=rows,
                                             exception=error, context={})

    @task(1)
    def age_band_summary(self) -> None:
        self._query("age_band_summary")

    @task(3)  # the most frequent question: one patient's record
    def patient_history(self) -> None:
        self._query("patient_history")

    @task(1)
    def cohort_filter(self) -> None:
        self._query("cohort_filter")


def run(case: dict, users: int, seconds: float) -> dict:
    settings = load_settings(**case["settings"])
    _context.update(settings=settings, layers=open_layers(settings, case["profile"]),
                    params=json.loads(Path(case["params"]).read_text()))
    env = Environment(user_classes=[AnalystUser])
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    gevent.sleep(seconds)
    # Let queries in flight finish: killing a user mid-query would count as neither.
    _window["open"] = False
    deadline = time.monotonic() + 120
    while _window["in_flight"] and time.monotonic() < deadline:
        gevent.sleep(0.01)
    runner.quit()
    stats = {}
    for name in QUERIES:
        entry = env.stats.get(name, "query")
        stats[name] = {"requests": entry.num_requests, "failures": entry.num_failures,
                       "rps": entry.num_requests / seconds,
                       "locust_p50_ms": entry.get_response_time_percentile(0.5),
                       "locust_p95_ms": entry.get_response_time_percentile(0.95),
                       "locust_p99_ms": entry.get_response_time_percentile(0.99),
                       "samples_ms": [round(x, 3) for x in _samples[name]],
                       "errors": sorted(set(_errors[name]))}
    _context["layers"].close()
    return {"users": users, "seconds": seconds, "queries": stats}


if __name__ == "__main__":
    case_file, user_count, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(run(json.loads(Path(case_file).read_text()), user_count, duration)))
