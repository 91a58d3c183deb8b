"""Concurrent console users: locust users posting the example queries to POST /api/query back to
back. Run as its own process (locust patches the standard library with gevent):
python -m benchmarks.sql_locust URL TOKEN USERS SECONDS ENGINE; prints one JSON line."""

from __future__ import annotations

import locust  # noqa: F401 - imported first: it monkey-patches sockets for gevent

import json
import random
import sys

import gevent
from locust import HttpUser, constant, task
from locust.env import Environment

from vitalflow.sql.examples import EXAMPLES

_config: dict = {}


class ConsoleUser(HttpUser):
    """A closed loop without think time: the next query goes out when the last one answered."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.rng = random.Random(id(self))
        self.client.headers["Authorization"] = f"Bearer {_config['token']}"

    @task
    def query(self) -> None:
        example = self.rng.choice(EXAMPLES)
        with self.client.post("/api/query", json={"sql": example.sql, "engine": _config["engine"]},
                              name=example.name, catch_response=True, timeout=120) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")


def run(url: str, token: str, users: int, seconds: float, engine: str) -> dict:
    _config.update(token=token, engine=engine)
    ConsoleUser.host = url
    env = Environment(user_classes=[ConsoleUser])
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    gevent.sleep(seconds)
    runner.quit()
    total = env.stats.total
    return {"engine": engine, "users": users, "seconds": seconds,
            "requests": total.num_requests, "failures": total.num_failures,
            "rps": round(total.num_requests / seconds, 2),
            "p50_ms": total.get_response_time_percentile(0.5),
            "p95_ms": total.get_response_time_percentile(0.95),
            "errors": sorted({str(e.error)[:200] for e in env.stats.errors.values()})}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]),
                         sys.argv[5])))
