"""Storage from the command line: a run on the lakehouse profile, raw snapshots, a pinned
export, maintenance, and clear errors when a backend is down."""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pyarrow.parquet as pq
import pytest

from tests.fhir_factory import observation, patient, write_ndjson
from tests.test_cli import vitalflow
from vitalflow.object_store import credentials_file
from vitalflow.services import free_port

pytestmark = pytest.mark.postgres


@pytest.fixture
def lakehouse_env(settings, s3_server, tmp_path) -> dict:
    home = tmp_path / "home"
    (home / "secrets").mkdir(parents=True)
    shutil.copy(credentials_file(s3_server.root), credentials_file(home))
    return {**os.environ, "VITALFLOW__DATABASE__URL": settings.database.url,
            "VITALFLOW__PATHS__HOME": str(home), "VITALFLOW__S3__ENDPOINT": s3_server.endpoint,
            "VITALFLOW__ICEBERG__WAREHOUSE": f"s3://vitalflow/cli-{uuid.uuid4().hex[:8]}"}


def test_lakehouse_run_history_pinned_export_and_maintenance(lakehouse_env, tmp_path):
    env = lakehouse_env
    write_ndjson(tmp_path / "a" / "Patient.ndjson", [patient("p1", birth="1970-01-01")])
    write_ndjson(tmp_path / "b" / "Observation.ndjson", [
        observation("w1", "p1", "weight", 80, "2022-05-01T09:00:00Z"),
        observation("h1", "p1", "height", 180, "2022-05-01T09:00:00Z")])
    first = json.loads(vitalflow("run", "--profile", "lakehouse", "--input",
                                 str(tmp_path / "a"), "--json", env=env).stdout.splitlines()[-1])
    assert first["storage"]["raw"].startswith("iceberg+postgresql://")
    history = vitalflow("raw", "history", env=env).stdout
    pinned = next(word for line in history.splitlines() for word in line.split("│")
                  if word.strip().isdigit() and len(word.strip()) > 6).strip()
    vitalflow("run", "--profile", "lakehouse", "--input", str(tmp_path / "b"), env=env)
    vitalflow("export", "raw.record", "--profile", "lakehouse", "--snapshot", pinned,
              "--out", str(tmp_path / "then.parquet"), env=env)
    vitalflow("export", "raw.record", "--profile", "lakehouse",
              "--out", str(tmp_path / "now.parquet"), env=env)
    assert (pq.read_table(tmp_path / "then.parquet").num_rows,
            pq.read_table(tmp_path / "now.parquet").num_rows) == (1, 3)
    out = vitalflow("export", "derived.patient_bmi_latest", "--profile", "lakehouse",
                    "--out", str(tmp_path / "bmi.csv"), env=env).stdout
    assert "Wrote 1 rows" in out and "lakehouse" in out
    maintained = vitalflow("raw", "maintain", "--older-than-days", "0", env=env).stdout
    assert "expired_snapshots" in maintained
    assert pq.read_table(tmp_path / "now.parquet").num_rows == 3


def test_backend_down_names_the_service_and_how_to_start_it(lakehouse_env, tmp_path):
    write_ndjson(tmp_path / "a" / "Patient.ndjson", [patient("p1")])
    env = {**lakehouse_env, "VITALFLOW__S3__ENDPOINT": f"http://127.0.0.1:{free_port()}",
           "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY", "AWS_SECRET_ACCESS_KEY": "s3cr3t-never-shown"}
    result = vitalflow("run", "--profile", "lakehouse", "--input", str(tmp_path / "a"),
                       env=env, check=False)
    assert result.returncode == 1
    assert "S3" in result.stderr and "vitalflow services up" in result.stderr
    assert "s3cr3t-never-shown" not in result.stderr + result.stdout
    env = {**lakehouse_env, "VITALFLOW__CLICKHOUSE__URL": f"clickhouse://u:pw-never-shown@"
                                                          f"127.0.0.1:{free_port()}/db"}
    result = vitalflow("run", "--profile", "clickhouse", "--input", str(tmp_path / "a"),
                       env=env, check=False)
    assert result.returncode == 1
    assert "ClickHouse" in result.stderr and "not reachable" in result.stderr
    assert "pw-never-shown" not in result.stderr + result.stdout


def test_iceberg_catalog_needs_the_control_database_as_a_url(tmp_path):
    from vitalflow.config import load_settings
    from vitalflow.storage import engine_url

    settings = load_settings(paths={"home": tmp_path})
    with pytest.raises(ValueError, match="give it as a URL"):
        engine_url(settings, "iceberg", "host=127.0.0.1 dbname=vitalflow")
    assert engine_url(settings, "iceberg", "postgresql://u@h/db").startswith(
        "iceberg+postgresql://u@h/db?warehouse=")
