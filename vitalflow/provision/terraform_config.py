"""Terraform outputs (the `vitalflow` output of an environment) to a vitalflow TOML file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import quote, urlencode

OUTPUT_NAME = "vitalflow"
# Where each secret goes at run time: (output section, key) -> environment variable to export.
SECRET_TARGETS = {
    ("database", "password_secret"): "PGPASSWORD (or a passfile named by PGPASSFILE)",
    ("privacy", "pseudonym_key_secret"): "VITALFLOW_PSEUDONYM_KEY",
    ("clickhouse", "password_secret"): "VITALFLOW_CLICKHOUSE_PASSWORD",
}
# A value under one of these names must be a reference (ARN, secret name, file), never a value.
_SECRET_NAME = re.compile(r"password|secret|token|(^|_)key$", re.IGNORECASE)
_REFERENCE = re.compile(r"^(arn:|[\w.-]+/[\w./-]+$|/)")


class TerraformOutputError(ValueError):
    """The outputs are missing, malformed or carry something that looks like a secret."""


def tools_dir() -> Path:
    """Where infra/terraform/install.sh puts tofu and checkov (VITALFLOW_TOOLS overrides)."""
    return Path(os.environ.get("VITALFLOW_TOOLS") or Path.home() / ".cache" / "vitalflow" / "tools")


def terraform_binary() -> str:
    """VITALFLOW_TERRAFORM, else the tofu the install step built, else tofu/terraform on PATH."""
    candidates = [os.environ.get("VITALFLOW_TERRAFORM", ""), str(tools_dir() / "bin" / "tofu"),
                  shutil.which("tofu") or "", shutil.which("terraform") or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise TerraformOutputError("no tofu or terraform binary: run `make install` "
                               "(infra/terraform/install.sh) or set VITALFLOW_TERRAFORM")


def read_outputs(env_dir: Path | None = None, output_json: Path | None = None) -> dict:
    """The `vitalflow` output's value from `terraform output -json` (run in env_dir, or saved in
    output_json), or from a state file (its "outputs" section has the same shape)."""
    if output_json is not None:
        document = json.loads(output_json.read_text())
        outputs = document.get("outputs", document) if "version" in document else document
    elif env_dir is not None:
        result = subprocess.run([terraform_binary(), f"-chdir={env_dir}", "output", "-json"],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise TerraformOutputError(f"terraform output failed in {env_dir}: "
                                       f"{result.stderr.strip()[-500:]}")
        outputs = json.loads(result.stdout or "{}")
    else:
        raise TerraformOutputError("give an environment folder or an output/state JSON file")
    if OUTPUT_NAME not in outputs:
        raise TerraformOutputError(f"no output named {OUTPUT_NAME!r} (found: "
                                   f"{', '.join(sorted(outputs)) or 'none'}); apply the "
                                   "environment first")
    output = outputs[OUTPUT_NAME]
    if output.get("sensitive"):
        raise TerraformOutputError(f"output {OUTPUT_NAME!r} is marked sensitive: it must hold "
                                   "references to secrets, not secrets")
    value = output.get("value")
    if not isinstance(value, dict):
        raise TerraformOutputError(f"output {OUTPUT_NAME!r} has no object value")
    _refuse_secret_values(value)
    return value


def _refuse_secret_values(value: dict, path: str = "") -> None:
    """Secrets are named by reference; a literal under a secret-like key is refused (by name,
    never echoing the value)."""
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        if isinstance(item, dict):
            _refuse_secret_values(item, where)
        elif (_SECRET_NAME.search(key) and isinstance(item, str) and item
              and not _REFERENCE.match(item)):
            raise TerraformOutputError(f"output {OUTPUT_NAME}.{where} looks like a secret value, "
                                       "not a reference (ARN, secret name or file): refused")


def _database_url(database: dict) -> str:
    query = {key: str(database[key]) for key in ("sslmode", "passfile") if database.get(key)}
    url = (f"postgresql://{quote(database['user'])}@{database['host']}:{database['port']}/"
           f"{quote(database['name'])}")
    return f"{url}?{urlencode(query)}" if query else url


def settings_from_outputs(outputs: dict) -> dict[str, dict]:
    """The TOML sections (only keys vitalflow.config knows) for an environment's outputs."""
    sections: dict[str, dict] = {"storage": {"profile": outputs["storage_profile"]}}
    if outputs.get("database"):
        sections["database"] = {"url": _database_url(outputs["database"])}
    if outputs.get("s3"):
        s3 = outputs["s3"]
        sections["s3"] = {k: s3[k] for k in ("endpoint", "region", "bucket") if s3.get(k)}
    if (outputs.get("iceberg") or {}).get("warehouse"):
        sections["iceberg"] = {"warehouse": outputs["iceberg"]["warehouse"]}
    if (outputs.get("clickhouse") or {}).get("url"):
        sections["clickhouse"] = {"url": outputs["clickhouse"]["url"]}
    privacy = outputs.get("privacy") or {}
    sections["privacy"] = {"require_key": bool(privacy.get("require_key", True))}
    return sections


def secret_references(outputs: dict) -> list[tuple[str, str]]:
    """(environment variable, where its value is kept) for every secret the outputs name."""
    found = []
    for (section, key), variable in SECRET_TARGETS.items():
        reference = (outputs.get(section) or {}).get(key)
        if reference:
            found.append((variable, reference))
    return found


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))  # a JSON string of plain text is a valid TOML basic string


def render_toml(outputs: dict) -> str:
    """The config file text: settings plus comments naming where each secret comes from."""
    environment = outputs.get("environment", "?")
    lines = [f"# vitalflow settings of environment {environment!s}, generated by",
             "# `vitalflow config from-terraform` from its Terraform outputs: do not edit, re-run.",
             "# Secrets are not in this file. Export them from the secret store before a run:"]
    lines += [f"#   {variable:<32} <- {reference}"
              for variable, reference in secret_references(outputs)] or ["#   (none)"]
    for section, values in settings_from_outputs(outputs).items():
        lines += ["", f"[{section}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def write_config(outputs: dict, out: Path) -> Path:
    """Write the TOML (mode 600: it names where the secrets are) once vitalflow's settings
    accept it."""
    from vitalflow.config import load_settings

    text = render_toml(outputs)
    load_settings(**tomllib.loads(text))  # unknown keys or bad values fail here, not at run time
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(out.suffix + ".tmp")
    partial.touch(mode=0o600)
    partial.write_text(text)
    partial.replace(out)
    return out
