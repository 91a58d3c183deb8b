"""`make serve` for real (infra/prefect/serve.sh): a Prefect server started by the test, the
deployments of prefect.yaml, the watcher and a process worker; a file dropped into the inbox
becomes a run, refined, then the derived tables through their owner flows' triggers. A
deployment file with a trigger cycle is refused before anything is deployed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.deploy.conftest import ROOT, wait_for
from tests.fhir_factory import observation, patient
from vitalflow.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
DEBOUNCE = 3  # seconds; prefect.yaml says 30


def _env(tmp_path: Path, database_url: str, prefect_file: Path, port: int) -> dict:
    return {**os.environ, "PREFECT_PORT": str(port), "PREFECT_HOME": str(tmp_path / "prefect"),
           "VITALFLOW_INPUT": str(tmp_path / "inbox"), "VITALFLOW_PREFECT_FILE": str(prefect_file),
           "VITALFLOW__DATABASE__URL": database_url,
           "VITALFLOW__PATHS__HOME": str(tmp_path / "home"),
           "VITALFLOW__MONITORING__WORKER_METRICS_PORT": "0",
           "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_API_URL": ""}


def _serve(tmp_path: Path, database_url: str, prefect_file: Path, port: int):
    log = (tmp_path / "serve.log").open("w")
    env = _env(tmp_path, database_url, prefect_file, port)
    return subprocess.Popen(["bash", str(ROOT / "infra/prefect/serve.sh")], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # serve.sh stops its children's process groups
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _flow_runs(api: str) -> list[dict]:
    response = httpx.post(f"{api}/flow_runs/filter", json={"limit": 50}, timeout=30)
    response.raise_for_status()
    return response.json()


def test_a_dropped_file_flows_through_to_the_derived_tables(tmp_path, database_url):
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text((ROOT / "prefect.yaml").read_text().replace(
        "debounce_seconds: &debounce 30", f"debounce_seconds: &debounce {DEBOUNCE}"))
    port = free_port()
    serve = _serve(tmp_path, database_url, prefect_file, port)
    try:
        wait_for("make serve to be ready", lambda: serve.poll() is not None or
                 "Prefect UI:" in (tmp_path / "serve.log").read_text(), timeout=300, every=1)
        assert serve.poll() is None, (tmp_path / "serve.log").read_text()
        resources = [patient("p1", birth="1970-01-01"), patient("p2", birth="1990-06-01"),
                     observation("h1", "p1", "height", 180, "2022-05-01T09:00:00Z"),
                     observation("w1", "p1", "weight", 81, "2022-05-01T09:00:00Z"),
                     observation("h2", "p2", "height", 165, "2022-05-01T09:00:00Z"),
                     observation("w2", "p2", "weight", 60, "2022-05-01T09:00:00Z")]
        bundle = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": r} for r in resources]}
        (tmp_path / "bundle.json").write_text(json.dumps(bundle))
        (tmp_path / "bundle.json").rename(tmp_path / "inbox" / "visit-2022-05-01.json")

        def summary_rows():
            with psycopg.connect(database_url) as conn:
                try:
                    return conn.execute("SELECT sum(patients) FROM derived.age_band_summary"
                                        ).fetchone()[0]
                except psycopg.errors.UndefinedTable:
                    return None

        assert wait_for("the derived tables", summary_rows, timeout=240, every=2) == 2
        api = f"http://127.0.0.1:{port}/api"

        def completed():
            runs = [r for r in _flow_runs(api) if r["state_type"] == "COMPLETED"]
            return runs if len(runs) >= 3 else None

        runs = wait_for("the completed flow runs", completed, timeout=60, every=2)
        arrival = [r for r in runs if r["parameters"].get("derive") is False]
        assert [Path(r["parameters"]["input_path"]).name for r in arrival] == [
            "visit-2022-05-01.json"]
        assert {r["parameters"].get("debounce_seconds") for r in runs} >= {DEBOUNCE}
        with psycopg.connect(database_url) as conn:
            bmi = conn.execute("SELECT count(*) FROM derived.patient_bmi_latest").fetchone()[0]
            statuses = {r[0] for r in conn.execute("SELECT status FROM meta.run")}
        assert bmi == 2 and statuses == {"succeeded"}

        def nightly_scheduled():  # the server's scheduler made runs of the cron deployment
            return [r for r in _flow_runs(api) if r["state_type"] == "SCHEDULED" and
                    r["parameters"].get("input_path") == str(tmp_path / "inbox")]

        wait_for("the nightly schedule's runs", nightly_scheduled, timeout=120, every=3)
        # `vitalflow run` from another shell with PREFECT_API_URL: a flow run on this server
        # with the same flow and task names, and its summary artifact.
        cli = subprocess.run(
            [str(Path(sys.executable).parent / "vitalflow"), "run", "--json", "--input",
             str(tmp_path / "inbox" / "visit-2022-05-01.json")],
            env={**_env(tmp_path, database_url, prefect_file, port), "PREFECT_API_URL": api},
            capture_output=True, text=True, timeout=300, check=False)
        assert cli.returncode == 0, cli.stderr[-3000:]
        run_id = json.loads(cli.stdout.splitlines()[-1])["run_id"]
        by_hand = [r for r in _flow_runs(api) if r["deployment_id"] is None]
        assert [r["state_type"] for r in by_hand] == ["COMPLETED"]
        tasks = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {
            "any_": [by_hand[0]["id"]]}}}, timeout=30).json()
        assert {t["name"].rsplit("-", 1)[0] for t in tasks} >= {"ingest", "refine"}
        artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {
            "any_": ["vitalflow-run-summary-postgres"]}}}, timeout=30).json()
        assert any(f"# vitalflow run {run_id}" in a["data"] for a in artifacts)
    finally:
        _stop(serve)
    assert serve.returncode is not None
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log, log


def test_serve_refuses_a_cyclic_deployment_file(tmp_path, database_url):
    cyclic = tmp_path / "prefect.yaml"
    cyclic.write_text((ROOT / "prefect.yaml").read_text().replace(
        "prefect.resource.id: vitalflow.table.derived.patient_bmi_latest",
        "prefect.resource.id: vitalflow.table.derived.*"))
    serve = _serve(tmp_path, database_url, cyclic, free_port())
    try:
        assert serve.wait(timeout=120) != 0
    finally:
        _stop(serve)
    log = " ".join((tmp_path / "serve.log").read_text().split())
    assert ("refused: trigger cycle: derive_age_band_summary/on-bmi-updated -> "
            "derive_age_band_summary/on-bmi-updated") in log
    assert not (tmp_path / "prefect" / "server.log").exists()  # refused before the server
