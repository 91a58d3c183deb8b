"""Static checks of terraform/: formatting, descriptions and types, tags, secrets, checkov."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.terraform.hcl_rules import (TERRAFORM, UNTAGGABLE, blocks, checkov_skips,
                                       directory_interface, has_tags, literal_strings,
                                       module_calls, parse, references, resources,
                                       secret_looking, tf_files, unsafe_secret_variable)

FILES = tf_files(TERRAFORM)
ENVS = ("dev", "staging", "prod", "local")
MODULES = ("database", "object_store", "clickhouse", "prefect", "monitoring",
           "network_and_secrets")


def _rel(path) -> str:
    return str(path.relative_to(TERRAFORM))


def test_layout_has_every_module_and_environment():
    for module in MODULES:
        assert (TERRAFORM / "modules" / module / "variables.tf").is_file(), module
    for env in ENVS:
        assert (TERRAFORM / "envs" / env / "main.tf").is_file(), env
    assert len(FILES) > 30


def test_fmt_check(tofu, tf_env):
    result = subprocess.run([str(tofu), "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
                            capture_output=True, text=True, env=tf_env, timeout=120)
    assert result.returncode == 0, f"not formatted (run `tofu fmt -recursive terraform`):\n" \
                                   f"{result.stdout}{result.stderr}"


def test_every_variable_is_described_and_typed():
    problems = [f"{_rel(path)}: variable {name} lacks {attribute}"
                for path in FILES for name, body in blocks(parse(path), "variable")
                for attribute in ("description", "type") if not body.get(attribute)]
    assert not problems, "\n".join(problems)


def test_secret_variables_are_sensitive_and_have_no_default():
    """A variable that would carry a secret value is sensitive and ephemeral (kept out of plan
    and state) and has no default; names, ARNs and versions of secrets are not secrets."""
    problems = [f"{_rel(path)}: variable {name}"
                for path in FILES for name, body in blocks(parse(path), "variable")
                if unsafe_secret_variable(name, body)]
    assert not problems, "secret variables must be sensitive, ephemeral, without default:\n" \
        + "\n".join(problems)


def test_every_output_is_described_and_none_is_a_secret():
    problems = []
    for path in FILES:
        for name, body in blocks(parse(path), "output"):
            value = json.dumps(body.get("value"))
            if not body.get("description"):
                problems.append(f"{_rel(path)}: output {name} has no description")
            if body.get("sensitive") or re.search(r"random_password|ephemeral\.|secret_string|"
                                                  r"\.result\b|\.password\b", value):
                problems.append(f"{_rel(path)}: output {name} exposes a secret value")
    assert not problems, "\n".join(problems)


def test_every_taggable_resource_is_tagged():
    problems = [f"{_rel(path)}: {rtype}.{name} has no tags/labels"
                for path in FILES for rtype, name, body in resources(parse(path))
                if rtype not in UNTAGGABLE and not has_tags(rtype, body)]
    assert not problems, "\n".join(problems)
    assert sum(1 for path in FILES for _ in resources(parse(path))) > 40


def test_no_hard_coded_secret():
    problems = [f"{_rel(path)}: {key} = <literal>"
                for path in FILES for key, value in literal_strings(parse(path))
                if secret_looking(key, value)]
    assert not problems, "\n".join(problems)
    tfvars = sorted(TERRAFORM.rglob("*.tfvars"))
    assert tfvars
    for path in tfvars:
        values = parse(path)
        assert not [k for k in values if re.search(r"password|secret|token|api_key", k, re.I)], \
            f"{_rel(path)}: secrets belong in the secret store, not a variables file"
        assert not [k for k, v in literal_strings(values) if secret_looking(k, v)], _rel(path)


def test_rules_catch_what_they_guard(tmp_path):
    """The rules above fail on the faults they look for (so a pass means something)."""
    bad = tmp_path / "bad.tf"
    bad.write_text('variable "x" {}\n'
                   'variable "db_password" {\n  type = string\n  sensitive = true\n}\n'
                   'resource "aws_s3_bucket" "b" { bucket = "b" }\n'
                   'resource "aws_db_instance" "d" { password = "hunter2hunter2" }\n'
                   'output "o" {\n  value = random_password.p.result\n}\n')
    document = parse(bad)
    assert [n for n, b in blocks(document, "variable")
            if not b.get("description")] == ["x", "db_password"]
    assert [n for n, b in blocks(document, "variable")
            if unsafe_secret_variable(n, b)] == ["db_password"]
    assert [n for t, n, b in resources(document) if not has_tags(t, b)] == ["b", "d"]
    assert [k for k, v in literal_strings(document) if secret_looking(k, v)] == ["password"]


def test_every_checkov_skip_is_justified():
    skips = [(path, text) for path in FILES for text in checkov_skips(parse(path))]
    assert skips, "expected the justified skips of the object store and secrets"
    unjustified = [f"{_rel(path)}: {text}" for path, text in skips
                   if not re.fullmatch(r"checkov:skip=CKV2?_[A-Z0-9]+_\d+:.{15,}", text)]
    assert not unjustified, "each skip needs CKV id and a reason:\n" + "\n".join(unjustified)


@pytest.mark.slow
def test_checkov_finds_no_failed_check(checkov, tmp_path):
    result = subprocess.run([str(checkov), "--directory", str(TERRAFORM), "--framework",
                             "terraform", "--skip-download", "--quiet", "--compact",
                             "--output", "json"], capture_output=True, text=True, timeout=900,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                 "BC_SKIP_MAPPING": "TRUE"})
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    summary = {key: sum(r["summary"][key] for r in reports)
               for key in ("passed", "failed", "parsing_errors")}
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})"
              for r in reports for c in r["results"].get("failed_checks", [])]
    assert summary["failed"] == 0, "checkov failed checks:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0 and summary["passed"] > 200, summary


def test_modules_are_wired_consistently():
    """What `validate` would catch without providers: each module call passes declared variables
    and every required one; every var., local. and module.X.Y reference exists."""
    problems = []
    shared = TERRAFORM / "envs" / "_shared"  # checked through the environments linking it
    for directory in sorted({path.parent for path in FILES} - {shared}):
        variables, _, local_names = directory_interface(directory)
        calls = {}
        for name, source, arguments in module_calls(directory):
            declared, outputs, _ = directory_interface(source)
            calls[name] = outputs
            problems += [f"{_rel(directory)}: module {name} has no variable {a}"
                         for a in sorted(arguments - set(declared))]
            problems += [f"{_rel(directory)}: module {name} misses required {v}"
                         for v, has_default in declared.items()
                         if not has_default and v not in arguments]
        for file, kind, name in references(directory):
            known = {"var": variables, "local": local_names}.get(kind)
            if kind == "module":
                call, output = name.split(".")
                ok = output in calls.get(call, set())
            else:
                ok = name in known
            if not ok:
                problems.append(f"{_rel(directory / file)}: {kind}.{name} is not declared")
    assert not problems, "\n".join(problems)
