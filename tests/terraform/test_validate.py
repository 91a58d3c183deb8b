"""`tofu validate` on every root and module whose providers can be had on these machines."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.terraform.hcl_rules import TERRAFORM, parse, tf_files, unquote

DIRECTORIES = sorted({p.parent for p in tf_files(TERRAFORM)} - {TERRAFORM / "envs" / "_shared"})
# Why providers cannot be had: the registry is unreachable, and the Go module proxy serves only
# releases from before Go modules (aws v1.60.0, kubernetes v1.13.4, random v2.0.0) or refuses
# the module (cyrilgdn/postgresql): none speaks today's schemas.
UNOBTAINABLE = ("registry.terraform.io is not reachable from these machines and the Go module "
                "proxy has no usable release of {providers}")


def required_providers(directory) -> set[str]:
    found = set()
    for path in directory.glob("*.tf"):
        for block in parse(path).get("terraform", []):
            for entry in block.get("required_providers", []):
                found |= {unquote(name) for name in entry if not name.startswith("__")}
    return found


@pytest.mark.parametrize("directory", DIRECTORIES, ids=lambda d: str(d.relative_to(TERRAFORM)))
def test_validate(directory, tofu, tf_env, tmp_path):
    providers = required_providers(directory)
    if providers:
        pytest.skip(UNOBTAINABLE.format(providers=", ".join(sorted(providers))))
    workdir = tmp_path / directory.name
    shutil.copytree(directory, workdir)
    for step in (["init", "-backend=false", "-input=false"], ["validate", "-no-color"]):
        result = subprocess.run([str(tofu), f"-chdir={workdir}", *step], capture_output=True,
                                text=True, env=tf_env, timeout=300)
        assert result.returncode == 0, f"{step[0]}: {result.stdout}{result.stderr}"


def test_environments_declare_their_providers():
    """Every cloud environment pins the providers its modules need (init then fetches them)."""
    needed = set().union(*(required_providers(TERRAFORM / "modules" / m)
                           for m in ("database", "object_store", "clickhouse", "prefect",
                                     "monitoring", "network_and_secrets")))
    for env in ("dev", "staging", "prod"):
        assert needed <= required_providers(TERRAFORM / "envs" / env), env
