"""`vitalflow sql` as a subprocess: exit 0 only when the query ran, formats, --out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def run_sql(profile_run):
    settings = profile_run("postgres")
    env = {**os.environ, "VITALFLOW__PATHS__HOME": str(settings.paths.home),
           "VITALFLOW__DATABASE__URL": settings.database.url,
           "VITALFLOW__STORAGE__PROFILE": "postgres", "COLUMNS": "160"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vitalflow.cli", "sql", *args], env=env,
                              capture_output=True, text=True, timeout=180)
    return run


@pytest.mark.slow  # about 30 s: each call starts a Python process and DuckDB
def test_formats_and_exit_codes(run_sql, tmp_path: Path):
    ok = run_sql("SELECT weight_category, count(*) AS n FROM derived.patient_bmi_latest "
                 "GROUP BY 1 ORDER BY 1", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    rows = json.loads(ok.stdout)
    assert rows and set(rows[0]) == {"weight_category", "n"}
    table = run_sql("SELECT measure, count(*) AS n FROM refined.observation GROUP BY 1 ORDER BY 1")
    assert table.returncode == 0 and "body_weight" in table.stdout and "rows" in table.stdout
    out = tmp_path / "bmi.csv"
    written = run_sql("SELECT patient_key, bmi FROM derived.patient_bmi_latest", "--out", str(out))
    assert written.returncode == 0 and out.read_text().startswith('"patient_key","bmi"')
    parquet = tmp_path / "bmi.parquet"
    assert run_sql("SELECT * FROM derived.age_band_summary", "--out", str(parquet)
                   ).returncode == 0
    assert parquet.read_bytes()[:4] == b"PAR1"


@pytest.mark.parametrize("args,says", [
    (("SELECT * FROM identity.patient_identity",), "restricted"),
    (("DROP TABLE refined.patient",), "DDL"),
    (("SELECT raw_json FROM raw.record", "--role", "analyst"), "may not read"),
    (("SELEC 1",), "refused"),
    (("SELECT (1",), "could not read"),
    (("SELECT 1", "--engine", "spark"), "unknown engine"),
])
def test_refused_or_failed_queries_exit_non_zero(run_sql, args, says):
    result = run_sql(*args)
    assert result.returncode == 1
    assert says in " ".join(result.stderr.split()), result.stderr
