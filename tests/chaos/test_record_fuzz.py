"""Issue 12 chaos suite: any JSON value is refined, filtered or quarantined with a named
reason; standardising never raises (hypothesis)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_standardise import WEIGHT_OBS, _raw, _standardiser  # noqa: E402

from vitalflow.reasons import Filtered, Quarantine  # noqa: E402

_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
JSON = st.recursive(_SCALARS, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=25)
_FIELDS = st.sampled_from(["id", "status", "code", "subject", "effectiveDateTime",
                           "effectivePeriod", "valueQuantity", "meta", "gender", "birthDate",
                           "resourceType", "extension"])
# Real resources with any field replaced by any value reach deeper into the rules.
MUTATED = st.builds(lambda base, changes: {**base, **changes},
                    st.sampled_from([WEIGHT_OBS, {"resourceType": "Patient", "id": "p1",
                                                  "gender": "female", "birthDate": "1970"}]),
                    st.dictionaries(_FIELDS, JSON, max_size=3))
_STANDARDISER = _standardiser()
_REASONS = {str(r) for r in Quarantine} | {str(r) for r in Filtered}


def _text(value) -> str:
    # NaN, Infinity and 1e999 as other systems write them: not JSON, still input.
    return json.dumps(value, allow_nan=True) if not isinstance(value, float) or \
        math.isfinite(value) else repr(value).replace("inf", "1e999")


def _one_outcome(text: str) -> None:
    out = _STANDARDISER.run(_raw([text]), "Observation")
    outcomes = (out.patients.num_rows + out.observations.num_rows + out.quarantine.num_rows
                + sum(out.filtered.values()))
    assert outcomes == 1 and sum(out.read.values()) == 1, text[:200]
    assert set(out.quarantine.column("reason").to_pylist()) <= _REASONS
    assert {reason for _, reason in out.filtered} <= _REASONS


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(JSON)
def test_any_json_value_has_exactly_one_named_outcome(value):
    _one_outcome(_text(value))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(MUTATED)
def test_any_mutation_of_a_resource_has_exactly_one_named_outcome(resource):
    _one_outcome(_text(resource))
