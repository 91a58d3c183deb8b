"""Lineage fixtures: a pipeline run on a generated input, and the OpenLineage JSON Schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vitalflow.generate import generate

SPEC = Path(os.environ.get("VITALFLOW_SHARED", Path(__file__).resolve().parents[3] / "shared")
            ) / "conformance" / "openlineage-spec"


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lineage-input")
    generate(out, 40, seed=7, defect_rate=0.05)
    return out


@pytest.fixture(scope="session")
def openlineage_validator():
    """validate(event): the event against OpenLineage.json and each facet against its own
    schema (the core schema accepts any facet by name)."""
    if not (SPEC / "OpenLineage.json").exists():
        pytest.skip(f"OpenLineage spec not found at {SPEC} (../shared is beside the project in "
                    "CI and on developer machines only)")
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = [json.loads(p.read_text()) for p in [SPEC / "OpenLineage.json",
                                                   *sorted((SPEC / "facets").glob("*.json"))]]
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas)
    core = Draft202012Validator(schemas[0], registry=registry)
    facet_schemas = {key: Draft202012Validator(s, registry=registry)
                     for s in schemas[1:] for key in s.get("properties", {})}

    def validate(event: dict) -> None:
        core.validate(event)
        containers = [event["run"].get("facets", {}), event["job"].get("facets", {})]
        for dataset in event.get("inputs", []) + event.get("outputs", []):
            containers += [dataset.get("facets", {}), dataset.get("inputFacets", {}),
                           dataset.get("outputFacets", {})]
        for facets in containers:
            for key, facet in facets.items():
                if key in facet_schemas:
                    facet_schemas[key].validate({key: facet})
                else:  # a custom facet: the spec asks for _producer and _schemaURL
                    assert key.startswith("vitalflow_"), key
                    assert {"_producer", "_schemaURL"} <= facet.keys()

    return validate
