"""infra/compose/docker-compose.yml checked by parsing (no Docker engine here): every service has an
image, a healthcheck and loopback-only ports; secrets come from files; config/compose.toml loads."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "infra" / "compose"
COMPOSE = yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
REQUIRED = {"postgres", "s3", "clickhouse", "marquez", "trino", "prefect-server",
            "prefect-worker", "prometheus", "alertmanager", "grafana"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY$|ACCESS_KEY", re.I)


def _long_running(name: str) -> bool:
    return SERVICES[name].get("labels", {}).get("vitalflow.oneshot") != "true"


def test_every_required_service_is_there():
    assert REQUIRED <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_pinned_image_healthcheck_and_loopback_ports(name):
    service = SERVICES[name]
    image = service.get("image", "")
    assert image and ":" in image and not image.endswith(":latest"), f"{name}: pin an image tag"
    if _long_running(name):
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
    else:
        assert service.get("restart") == "no", f"{name}: a one-shot job must not restart"
    for port in service.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is not bound to loopback"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_no_plaintext_secret_in_the_compose_file(name):
    environment = SERVICES[name].get("environment", {})
    assert isinstance(environment, dict), f"{name}: use a mapping for environment"
    for key, value in environment.items():
        if SECRET_NAME.search(key):
            assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), \
                f"{name}: {key} must come from a secret file or the service's env_file"
        assert not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), f"{name}: {key} has a password"
    env_file = SERVICES[name].get("env_file")
    if env_file:
        assert env_file == f"../../.vitalflow/compose/env/{name}.env", \
            f"{name}: its own env file under .vitalflow/compose/env (generated, mode 600)"
    for secret in SERVICES[name].get("secrets", []):
        assert secret in COMPOSE["secrets"], f"{name}: unknown secret {secret}"


def test_secret_files_live_under_the_generated_folder():
    for name, secret in COMPOSE["secrets"].items():
        assert secret["file"].startswith("../../.vitalflow/compose/secrets/"), name


def test_mounted_config_files_exist():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source} missing"


def test_service_configs_parse_and_carry_no_secret():
    for path in ("prometheus/prometheus.yml", "prometheus/alerts.yml",
                 "alertmanager/alertmanager.yml", "grafana/provisioning/datasources/vitalflow.yml"):
        assert yaml.safe_load((COMPOSE_DIR / path).read_text()), path
    grafana = (COMPOSE_DIR / "grafana/provisioning/datasources/vitalflow.yml").read_text()
    assert "password: $ANALYST_DB_PASSWORD" in grafana
    for catalog in (COMPOSE_DIR / "trino" / "catalog").glob("*.properties"):
        for line in catalog.read_text().splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            if SECRET_NAME.search(key.replace("-", "_")):
                assert value.startswith("${ENV:"), f"{catalog.name}: {key}"


def test_make_secrets_writes_owner_only_files_and_keeps_values(tmp_path):
    env = {**os.environ, "VITALFLOW_COMPOSE_SECRETS": str(tmp_path / "compose")}
    for _ in range(2):
        result = subprocess.run(["bash", str(COMPOSE_DIR / "make-secrets.sh")], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        first = (tmp_path / "compose" / "secrets" / "vitalflow_db_password").read_text()
    assert len(first) == 32 and first not in result.stdout
    root = tmp_path / "compose"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for path in root.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for name in SERVICES:
        if SERVICES[name].get("env_file"):
            assert (root / "env" / f"{name}.env").is_file(), name
    for secret in COMPOSE["secrets"].values():
        assert (root / "secrets" / Path(secret["file"]).name).is_file(), secret["file"]
    assert f"vitalflow:{first}" in (root / "pgpass").read_text()


def test_compose_toml_loads_and_matches_the_published_ports(monkeypatch):
    from vitalflow.config import load_settings

    monkeypatch.setenv("VITALFLOW_CONFIG", str(ROOT / "config" / "compose.toml"))
    for key in [k for k in os.environ if k.startswith("VITALFLOW__")]:
        monkeypatch.delenv(key)
    settings = load_settings()
    published = {name: {int(str(p).split(":")[1]) for p in SERVICES[name].get("ports", [])}
                 for name in SERVICES}
    assert settings.storage.profile == "mixed"
    assert settings.privacy.require_key
    assert re.search(r"@127\.0\.0\.1:(\d+)/", settings.database.url).group(1) == "5432"
    assert 5432 in published["postgres"]
    assert int(settings.s3.endpoint.rsplit(":", 1)[1]) in published["s3"]
    assert int(re.search(r":(\d+)/", settings.clickhouse.url).group(1)) in published["clickhouse"]
    assert not re.search(r"://[^/@]+:[^/@]+@", settings.database.url), "password in the URL"
    assert "passfile=" in settings.database.url
