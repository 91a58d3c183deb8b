"""Fixtures of the Terraform checks: the tools infra/terraform/install.sh installs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vitalflow.provision.terraform_config import tools_dir


def _tool(name: str) -> Path:
    path = tools_dir() / "bin" / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: `make install` runs infra/terraform/install.sh, which "
                    "installs it")
    return path


@pytest.fixture(scope="session")
def tofu() -> Path:
    return _tool("tofu")


@pytest.fixture(scope="session")
def checkov() -> Path:
    return _tool("checkov")


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory) -> dict[str, str]:
    """Environment for tofu: an empty CLI config (no machine-wide one), no update checks, and a
    loopback-only world (no registry is asked for anything)."""
    config = tmp_path_factory.mktemp("tofu") / "tofurc"
    config.write_text("")
    return {**os.environ, "TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1",
            "CHECKPOINT_DISABLE": "1", "TF_INPUT": "0"}
