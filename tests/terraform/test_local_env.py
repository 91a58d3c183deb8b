"""terraform/envs/local applied for real against the session's embedded PostgreSQL and S3 store,
turned into a config file, then destroyed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import psycopg
import pytest

from tests.terraform.hcl_rules import TERRAFORM
from vitalflow.object_store import s3_options

pytestmark = pytest.mark.postgres


def _tofu(tofu, workdir, env, *args, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(tofu), f"-chdir={workdir}", *args], capture_output=True,
                            text=True, env=env, timeout=timeout)
    assert result.returncode == 0, f"tofu {args[0]} failed:\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result


@pytest.fixture
def local_env(tmp_path, tofu, tf_env, pg_server, s3_server):
    """A copy of envs/local with its variables pointing at the session's services."""
    workdir = tmp_path / "local"
    shutil.copytree(TERRAFORM / "envs" / "local", workdir)
    suffix = uuid.uuid4().hex[:8]
    variables = {"admin_url": pg_server.admin_url(), "database_name": f"tf_{suffix}",
                 "role_prefix": f"tf{suffix}", "passfile": str(tmp_path / "secrets" / "pgpass"),
                 "s3_endpoint": s3_server.endpoint, "s3_home": str(s3_server.root),
                 "bucket": f"tf-{suffix}", "python": sys.executable}
    env = {**tf_env, **{f"TF_VAR_{k}": v for k, v in variables.items()}}
    _tofu(tofu, workdir, env, "init", "-backend=false", "-input=false")
    return workdir, env, variables


def _s3(variables):
    options = s3_options(Path(variables["s3_home"]),
                         endpoint=variables["s3_endpoint"])
    return boto3.client("s3", endpoint_url=variables["s3_endpoint"],
                        region_name=options["s3.region"],
                        aws_access_key_id=options["s3.access-key-id"],
                        aws_secret_access_key=options["s3.secret-access-key"])


def test_validate_local_env(local_env, tofu):
    workdir, env, _ = local_env
    assert "Success" in _tofu(tofu, workdir, env, "validate", "-no-color").stdout


def test_apply_config_destroy(local_env, tofu, pg_server, tmp_path):
    workdir, env, variables = local_env
    _tofu(tofu, workdir, env, "apply", "-auto-approve", "-input=false", "-no-color")
    prefix, database = variables["role_prefix"], variables["database_name"]

    # The app role logs in with the generated password from the passfile (mode 600).
    passfile = tmp_path / "secrets" / "pgpass"
    assert oct(passfile.stat().st_mode & 0o777) == "0o600"
    app_url = pg_server.url(database, f"{prefix}_app").replace(str(pg_server.passfile),
                                                               str(passfile))
    with psycopg.connect(app_url) as conn:
        schemas = {r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE pg_get_userbyid(nspowner) = %s",
            (f"{prefix}_app",))}
        assert schemas == {"meta", "refined", "derived", "identity"}
        conn.execute("CREATE TABLE derived.t (x int)")
        conn.execute("CREATE TABLE identity.secret (x int)")
        conn.commit()
        analyst = f"{prefix}_analyst"
        can = conn.execute(
            "SELECT has_table_privilege(%s, 'derived.t', 'SELECT'),"
            " has_schema_privilege(%s, 'identity', 'USAGE'),"
            " has_table_privilege(%s, 'identity.secret', 'SELECT'),"
            " has_database_privilege('public', current_database(), 'CONNECT')",
            (analyst, analyst, analyst)).fetchone()
        assert can == (True, False, False, False)
    assert variables["bucket"] in {b["Name"] for b in _s3(variables).list_buckets()["Buckets"]}
    _s3(variables).put_object(Bucket=variables["bucket"], Key="raw/a.ndjson", Body=b"{}\n")

    # Its outputs (read by `tofu output -json` in the folder) become a config file vitalflow
    # loads and connects with.
    config = tmp_path / "local.toml"
    cli = subprocess.run([sys.executable, "-m", "vitalflow.cli", "config", "from-terraform",
                          "--env-dir", str(workdir), "--out", str(config)],
                         capture_output=True, text=True, timeout=120,
                         env={**env, "VITALFLOW_TERRAFORM": str(tofu)})
    assert cli.returncode == 0, cli.stderr
    loaded = subprocess.run(
        [sys.executable, "-c", "from vitalflow.config import load_settings; import json; "
         "s = load_settings(); print(json.dumps([s.database.url, s.s3.bucket, "
         "s.storage.profile, s.iceberg.warehouse]))"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "VITALFLOW_CONFIG": str(config)})
    assert loaded.returncode == 0, loaded.stderr
    url, bucket, profile, warehouse = json.loads(loaded.stdout)
    assert (bucket, profile, warehouse) == (variables["bucket"], "lakehouse",
                                            f"s3://{variables['bucket']}/warehouse")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == f"{prefix}_app"

    _tofu(tofu, workdir, env, "destroy", "-auto-approve", "-input=false", "-no-color")
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as admin:
        assert not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (database,)).fetchone()
        assert not admin.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
                                 (f"{prefix}%",)).fetchall()
    assert f"{prefix}_app" not in passfile.read_text()
    assert variables["bucket"] not in {b["Name"] for b in _s3(variables).list_buckets()["Buckets"]}
    state = (workdir / "terraform.tfstate").read_text()
    assert "PASSWORD" not in state.upper().replace("PASSFILE", "")
