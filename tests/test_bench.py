"""`vitalflow bench`: sizes, the 1% change file, percentiles, and a quick run on every profile
that must produce a complete, consistent report."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.inputs import CHANGED_AT, parse_size, write_changes
from benchmarks.report import percentile
from tests.fhir_factory import observation, write_ndjson

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("postgres", "lakehouse", "clickhouse", "mixed")


@pytest.mark.parametrize(("text", "observations"),
                         [("10k", 10_000), ("1m", 1_000_000), ("2500", 2_500), ("1.5k", 1_500)])
def test_sizes(text, observations):
    assert parse_size(text) == observations


@pytest.mark.parametrize("text", ["ten", "10x", "-5k", "3"])
def test_bad_sizes_say_what_to_use(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_change_file_holds_newer_versions_of_one_in_a_hundred(tmp_path):
    rows = [observation(f"o{i}", "p", "weight", 70 + i % 5, "2020-01-01T10:00:00Z")
            for i in range(300)]
    write_ndjson(tmp_path / "in" / "Observation.ndjson", rows)
    with (tmp_path / "in" / "Observation.ndjson").open("a") as broken:
        broken.write("{not json\n")
    assert write_changes(tmp_path / "in", tmp_path / "out", 0.01) == 3
    changed = [json.loads(line) for line in (tmp_path / "out" / "Observation.ndjson").open()]
    assert [c["id"] for c in changed] == ["o0", "o100", "o200"]
    assert changed[0]["valueQuantity"]["value"] == pytest.approx(70 * 1.02)
    assert changed[0]["meta"] == {"versionId": "2", "lastUpdated": CHANGED_AT}


def test_percentiles():
    samples = [float(x) for x in range(1, 101)]
    assert percentile(samples, 50) == pytest.approx(50.5, abs=0.6)
    assert percentile(samples, 99) == pytest.approx(99, abs=1.1)
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0


@pytest.mark.slow
def test_quick_run_on_every_profile_writes_a_consistent_report(tmp_path):
    # Only look for locust: importing it would patch this process with gevent.
    if importlib.util.find_spec("locust") is None:
        pytest.skip("locust is not installed (the bench extra: pip install -e '.[bench]')")
    env = {k: v for k, v in os.environ.items() if k != "VITALFLOW__DATABASE__URL"}
    done = subprocess.run(
        [sys.executable, "-m", "vitalflow.cli", "bench", "--quick", "--sizes", "2k",
         "--profiles", ",".join(PROFILES), "--users", "2", "--seconds", "2",
         "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    (report_file,) = tmp_path.glob("storage-*.json")
    report = json.loads(report_file.read_text())
    assert report["machine"]["git_commit"]
    assert [r["profile"] for r in report["results"]] == list(PROFILES)
    for result in report["results"]:
        assert "error" not in result, result
        pipeline = result["pipeline"]
        for counts in pipeline["counts"].values():  # every record read is accounted for
            assert counts["read"] == (counts["refined"] + counts["quarantined"]
                                      + counts["filtered"] + counts["duplicates"])
        assert pipeline["incremental"]["equal_to_full_rebuild"]
        assert pipeline["incremental"]["counts"]["Observation"]["read"] == (
            pipeline["incremental"]["changed_observations"])
        assert all(pipeline["storage_bytes"][layer] > 0 for layer in ("raw", "refined",
                                                                       "derived"))
        assert pipeline["floor"]["load"] > 0 and pipeline["floor"]["derive"] > 0
        for query in result["queries"].values():
            assert query["rows"] > 0 and len(query["warm_ms"]) == 5
        for query in result["concurrency"]["queries"].values():
            assert query["requests"] > 0 and query["failures"] == 0
    markdown = (tmp_path / "storage-latest.md").read_text()
    assert all(f"| 2k | {profile} |" in markdown for profile in PROFILES)
    for chart in ("throughput", "growth", "incremental", "latency"):
        assert (tmp_path / f"storage-{chart}.png").stat().st_size > 10_000
