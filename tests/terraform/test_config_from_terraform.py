"""`vitalflow config from-terraform`: outputs of an environment to a config file vitalflow loads,
with secrets named, never written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest

from vitalflow.config import load_settings
from vitalflow.provision.terraform_config import (TerraformOutputError, read_outputs,
                                                  render_toml, write_config)

ARN = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:vitalflow-prod/"
PROD = {
    "environment": "prod", "storage_profile": "mixed",
    "database": {"host": "vitalflow-prod.abc.eu-central-1.rds.amazonaws.com", "port": 5432,
                 "name": "vitalflow", "user": "vitalflow_app", "sslmode": "verify-full",
                 "reader_hosts": ["r1"], "password_secret": ARN + "db_app-x1",
                 "admin_secret": ARN + "rds-admin"},
    "s3": {"endpoint": "https://s3.eu-central-1.amazonaws.com", "region": "eu-central-1",
           "bucket": "vitalflow-prod-data", "raw_uri": "s3://vitalflow-prod-data/raw/",
           "raw_events_queue": "https://sqs/q", "audit_bucket": "vitalflow-prod-audit"},
    "iceberg": {"warehouse": "s3://vitalflow-prod-data/warehouse"},
    "clickhouse": {"url": "clickhouses://default@abc.clickhouse.cloud:8443/default",
                   "password_secret": ARN + "clickhouse_password-x2"},
    "privacy": {"pseudonym_key_secret": ARN + "pseudonym_key-x3"},
    "prefect": {"api_url": "https://prefect/api", "work_pool": "vitalflow-prod-pool"},
}


def _output_json(tmp_path, value, sensitive=False):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"vitalflow": {"sensitive": sensitive, "type": "object",
                                              "value": value}}))
    return path


def test_prod_outputs_give_settings_and_secret_references(tmp_path, monkeypatch):
    out = write_config(read_outputs(output_json=_output_json(tmp_path, PROD)),
                       tmp_path / "config" / "prod.toml")
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    text = out.read_text()
    for reference in (ARN + "db_app-x1", ARN + "clickhouse_password-x2", ARN + "pseudonym_key-x3"):
        assert reference in text  # named in a comment, so the operator knows what to export
    assert "VITALFLOW_PSEUDONYM_KEY" in text and "VITALFLOW_CLICKHOUSE_PASSWORD" in text
    assert "password_secret" not in tomllib.loads(text).get("database", {})
    monkeypatch.setenv("VITALFLOW_CONFIG", str(out))
    settings = load_settings()
    assert settings.database.url == ("postgresql://vitalflow_app@vitalflow-prod.abc.eu-central-1"
                                     ".rds.amazonaws.com:5432/vitalflow?sslmode=verify-full")
    assert settings.storage.profile == "mixed"
    assert (settings.s3.bucket, settings.s3.region) == ("vitalflow-prod-data", "eu-central-1")
    assert settings.iceberg.warehouse == "s3://vitalflow-prod-data/warehouse"
    assert settings.clickhouse.url.startswith("clickhouses://default@")
    assert settings.privacy.require_key is True


def test_a_state_file_works_too(tmp_path):
    state = tmp_path / "terraform.tfstate"
    state.write_text(json.dumps({"version": 4, "outputs": {
        "vitalflow": {"type": "object", "value": {**PROD, "clickhouse": None}}}}))
    toml = tomllib.loads(render_toml(read_outputs(output_json=state)))
    assert "clickhouse" not in toml and toml["storage"]["profile"] == "mixed"


@pytest.mark.parametrize("case, message", [
    ("sensitive", "marked sensitive"),
    ("literal", "database.password_secret looks like a secret value"),
    ("missing", "no output named 'vitalflow'"),
])
def test_refuses_secrets_and_missing_outputs(tmp_path, case, message):
    if case == "missing":
        path = tmp_path / "o.json"
        path.write_text("{}")
    else:
        value = json.loads(json.dumps(PROD))
        if case == "literal":
            value["database"]["password_secret"] = "Sup3rS3cretPassw0rd"
        path = _output_json(tmp_path, value, sensitive=case == "sensitive")
    with pytest.raises(TerraformOutputError, match=message) as problem:
        read_outputs(output_json=path)
    assert "Sup3rS3cret" not in str(problem.value)


def test_cli_writes_the_file_and_shows_a_table(tmp_path):
    out = tmp_path / "prod.toml"
    result = subprocess.run([sys.executable, "-m", "vitalflow.cli", "config", "from-terraform",
                             "--output-json", str(_output_json(tmp_path, PROD)),
                             "--out", str(out)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert out.exists() and "VITALFLOW_CONFIG=" in result.stdout
    assert "vitalflow-prod-data" in result.stdout and "pseudonym_key-x3" in result.stdout
    both = subprocess.run([sys.executable, "-m", "vitalflow.cli", "config", "from-terraform",
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert both.returncode == 2 and "exactly one" in both.stderr
