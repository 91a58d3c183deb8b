"""The vitalflow command line, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vitalflow.services import free_port

pytestmark = pytest.mark.postgres


def vitalflow(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "vitalflow.cli", *args], env=env,
                            capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"vitalflow {' '.join(args)} failed:\n{result.stderr}")
    return result


def service_state(status: str, service: str) -> str:
    """A service's state in the last line of `services status --json`."""
    return json.loads(status.strip().splitlines()[-1])[service]["state"]


def test_run_json_reports_reconciled_counts(settings, tmp_path):
    env = {**os.environ, "VITALFLOW__DATABASE__URL": settings.database.url,
           "VITALFLOW__PATHS__HOME": str(tmp_path / "home")}
    vitalflow("generate", "--out", str(tmp_path / "in"), "--patients", "40", "--defect-rate",
              "0.1", env=env)
    result = vitalflow("run", "--input", str(tmp_path / "in"), "--json", env=env)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["database_url"].startswith("postgresql://")
    for resource in ("Observation", "Patient"):
        c = summary["counts"][resource]
        assert c["read"] == c["refined"] + c["quarantined"] + c["filtered"] + c["duplicates"]
    assert summary["counts"]["Observation"]["quarantined"] > 0
    human = vitalflow("run", "--input", str(tmp_path / "in"), env=env)
    assert "records by outcome" in human.stdout and "Age bands" in human.stdout


def test_embedded_services_and_default_sample(tmp_path):
    env = {**os.environ, "VITALFLOW__PATHS__HOME": str(tmp_path / "home"),
           "VITALFLOW__DATABASE__EMBEDDED_PORT": str(free_port()),
           "VITALFLOW__GENERATE__PATIENTS": "30"}
    env.pop("VITALFLOW__DATABASE__URL", None)
    try:
        result = vitalflow("run", "--json", env=env)
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert "passfile=" in summary["database_url"]
        assert summary["counts"]["Patient"]["read"] >= 30
        # the installed console script, as a user types it
        script = Path(sys.executable).with_name("vitalflow")
        status = subprocess.run([str(script), "services", "status", "--json"], env=env,
                                capture_output=True, text=True, timeout=600, check=True)
        assert service_state(status.stdout, "postgres") == "running"
    finally:
        vitalflow("services", "down", env=env)
    stopped = vitalflow("services", "status", "--json", env=env).stdout
    assert service_state(stopped, "postgres") == "stopped"


def test_unreachable_database_is_a_clear_error(tmp_path):
    env = {**os.environ, "VITALFLOW__DATABASE__URL":
           f"postgresql://someone:hunter2@127.0.0.1:{free_port()}/x",
           "VITALFLOW__PATHS__HOME": str(tmp_path / "home")}
    (tmp_path / "in").mkdir()
    result = vitalflow("run", "--input", str(tmp_path / "in"), env=env, check=False)
    assert result.returncode == 1
    assert "not reachable" in result.stderr and "hunter2" not in result.stderr + result.stdout


def test_production_refuses_to_run_without_a_key(settings, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "VITALFLOW_PSEUDONYM_KEY"}
    env |= {"VITALFLOW__DATABASE__URL": settings.database.url,
            "VITALFLOW__PATHS__HOME": str(tmp_path / "home"),
            "VITALFLOW_CONFIG": str(Path(__file__).parents[1] / "config" / "production.toml")}
    vitalflow("generate", "--out", str(tmp_path / "in"), "--patients", "5", env=env)
    result = vitalflow("run", "--input", str(tmp_path / "in"), env=env, check=False)
    assert result.returncode == 1
    assert "no pseudonymisation key" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "secrets" / "pseudonym.key").exists()


def test_rebuild_asks_first_then_refines_every_raw_batch_again(settings, tmp_path):
    env = {**os.environ, "VITALFLOW__DATABASE__URL": settings.database.url,
           "VITALFLOW__PATHS__HOME": str(tmp_path / "home")}
    vitalflow("generate", "--out", str(tmp_path / "in"), "--patients", "20", env=env)
    first = json.loads(vitalflow("run", "--input", str(tmp_path / "in"), "--json",
                                 env=env).stdout.strip().splitlines()[-1])
    refused = subprocess.run([sys.executable, "-m", "vitalflow.cli", "rebuild"], env=env,
                             input="n\n", capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and "rebuild them from raw?" in refused.stdout
    rebuilt = vitalflow("rebuild", "--yes", env=env).stdout
    read = first["counts"]["Observation"]["read"]
    assert "Rebuilt Observation" in rebuilt and f"{read:,}" in rebuilt
    again = json.loads(vitalflow("run", "--input", str(tmp_path / "in"), "--json",
                                 env=env).stdout.strip().splitlines()[-1])
    assert again["tables"] == first["tables"]
    assert again["bmi_categories"] == first["bmi_categories"]
