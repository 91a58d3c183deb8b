"""Rules every .tf file of terraform/ keeps, checked on python-hcl2's parse (no provider needed)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

import hcl2

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"

# Resource types that take no tags/labels (sub-resources and attachments of taggable ones).
UNTAGGABLE = {
    "aws_kms_alias", "aws_iam_role_policy", "aws_iam_role_policy_attachment",
    "aws_secretsmanager_secret_version", "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_ownership_controls", "aws_s3_bucket_versioning",
    "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_logging",
    "aws_s3_bucket_object_lock_configuration", "aws_s3_bucket_policy",
    "aws_s3_bucket_lifecycle_configuration", "aws_s3_bucket_notification",
    "aws_sqs_queue_policy", "aws_sns_topic_subscription",
    "prefect_work_pool", "terraform_data",
}
# Kubernetes objects carry labels in metadata (kubernetes_manifest: in manifest.metadata).
_SECRET_KEY = re.compile(r"(^|_)(password|secret|token|api_key|private_key|access_key|key)"
                         r"(_wo)?$", re.I)
_SECRET_LITERAL = re.compile(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY")
# Long random-looking text: letters of both cases and digits, no word separators.
_HIGH_ENTROPY = re.compile(r"^(?=.*[0-9])(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9+/=_]{24,}$")


def unquote(text):
    return text[1:-1] if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] == '"' \
        else text


def tf_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)


@functools.cache
def parse(path: Path) -> dict:
    """The parsed file (cached: the checks read each file many times; do not mutate)."""
    with path.open() as handle:
        return hcl2.load(handle)


def blocks(document: dict, kind: str) -> Iterator[tuple[str, dict]]:
    """(label, body) of each `kind "label" {}` block (variables, outputs)."""
    for entry in document.get(kind, []):
        for label, body in entry.items():
            yield unquote(label), body


def resources(document: dict) -> Iterator[tuple[str, str, dict]]:
    for entry in document.get("resource", []):
        for rtype, named in entry.items():
            for name, body in named.items():
                yield unquote(rtype), unquote(name), body


def _first(value):
    return value[0] if isinstance(value, list) and value else value


def has_tags(rtype: str, body: dict) -> bool:
    if rtype == "kubernetes_manifest":
        metadata = (body.get("manifest") or {}).get("metadata") or {}
        return "labels" in metadata
    if rtype.startswith("kubernetes_"):
        return "labels" in (_first(body.get("metadata")) or {})
    return "tags" in body


_SECRET_VARIABLE = re.compile(r"(^|_)(password|secret|token|api_key|private_key)$")


def unsafe_secret_variable(name: str, body: dict) -> bool:
    """A variable named like a secret value that is not sensitive, ephemeral and default-free."""
    return bool(_SECRET_VARIABLE.search(name)) and not (
        body.get("sensitive") is True and body.get("ephemeral") is True and "default" not in body)


def literal_strings(node, key: str = "") -> Iterator[tuple[str, str]]:
    """(attribute name, literal) of every string that is not an interpolation or reference."""
    if isinstance(node, dict):
        for child_key, value in node.items():
            if child_key != "__comments__":
                yield from literal_strings(value, str(child_key))
    elif isinstance(node, list):
        for value in node:
            yield from literal_strings(value, key)
    elif isinstance(node, str) and "${" not in node:
        yield key, unquote(node)


def secret_looking(key: str, value: str) -> bool:
    """A literal that is, or sits where one would put, a secret value (names of secrets,
    descriptions and references are fine)."""
    if key in ("description", "name", "sid", "alarm_description", "secret_id", "secret_name",
               "default_mode", "mount_path"):
        return False
    if _SECRET_LITERAL.search(value) or _HIGH_ENTROPY.match(value):
        return True
    return bool(_SECRET_KEY.search(key)) and bool(value) and "/" not in value


def checkov_skips(document: dict) -> Iterator[str]:
    """Every `#checkov:skip=...` comment python-hcl2 keeps with its block."""
    def walk(node):
        if isinstance(node, dict):
            for comment in node.get("__comments__", []):
                text = comment.get("value", "").strip()
                if text.startswith("checkov:skip"):
                    yield text
            for key, value in node.items():
                if key != "__comments__":
                    yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)
    yield from walk(document)


MODULE_META = {"source", "count", "for_each", "depends_on", "providers", "version"}


def directory_interface(directory: Path) -> tuple[dict[str, bool], set[str], set[str]]:
    """(variable -> has a default, outputs, locals) declared in a module's folder."""
    variables, outputs, local_names = {}, set(), set()
    for path in directory.glob("*.tf"):
        document = parse(path)
        variables |= {name: "default" in body for name, body in blocks(document, "variable")}
        outputs |= {name for name, _ in blocks(document, "output")}
        for entry in document.get("locals", []):
            local_names |= {k for k in entry if not k.startswith("__")}
    return variables, outputs, local_names


def module_calls(directory: Path) -> Iterator[tuple[str, Path, set[str]]]:
    """(call name, source folder, arguments) of each local `module` block in a folder."""
    for path in directory.glob("*.tf"):
        for name, body in blocks(parse(path), "module"):
            source = unquote(body["source"])
            arguments = {k for k in body if k not in MODULE_META and not k.startswith("__")}
            yield name, (directory / source).resolve(), arguments


def references(directory: Path) -> Iterator[tuple[str, str, str]]:
    """(file, kind, name) of var.X, local.X and module.X.Y references, comments left out."""
    pattern = re.compile(r"\b(var|local)\.(\w+)|\bmodule\.(\w+)(?:\[\d+\])?\.(\w+)")
    for path in directory.glob("*.tf"):
        code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        for match in pattern.finditer(code):
            if match.group(1):
                yield path.name, match.group(1), match.group(2)
            else:
                yield path.name, "module", f"{match.group(3)}.{match.group(4)}"
