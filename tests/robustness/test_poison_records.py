"""Issue 12, defect 1: no single record can fail a run, whatever its shape."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_standardise import WEIGHT_OBS, _raw, _run  # noqa: E402

from vitalflow.refine.standardise import MAX_NESTING  # noqa: E402


def _nested(depth: int) -> str:
    return json.dumps(WEIGHT_OBS)[:-1] + ', "extension": ' + "[" * depth + "]" * depth + "}"


def test_ten_thousand_nested_arrays_are_quarantined_not_raised():
    out = _run(_nested(10_000), json.dumps(WEIGHT_OBS), hint="Observation")

    assert out.quarantine.column("reason").to_pylist() == ["too_deeply_nested"]
    assert out.observations.num_rows == 1
    assert dict(out.read) == {"Observation": 2}


def test_nesting_up_to_the_limit_is_refined():
    # The resource itself is one level, "extension" the next: the arrays may use the rest.
    out = _run(_nested(MAX_NESTING - 1))

    assert out.quarantine.num_rows == 0 and out.observations.num_rows == 1


def test_brackets_inside_strings_do_not_count_as_nesting():
    record = dict(WEIGHT_OBS, note=[{"text": "[" * 5000}])

    out = _run(record)

    assert out.quarantine.num_rows == 0 and out.observations.num_rows == 1


def test_any_exception_while_standardising_quarantines_only_that_record(monkeypatch):
    import vitalflow.refine.standardise as standardise

    real = standardise.standardise_observation

    def explode(resource, *args):
        if resource.get("id") == "boom":
            raise ZeroDivisionError("secret detail that must not leak")
        return real(resource, *args)

    monkeypatch.setattr(standardise, "standardise_observation", explode)
    bad = dict(WEIGHT_OBS, id="boom", status="preliminary ")  # not on the fast path

    out = _run(bad, json.dumps(WEIGHT_OBS))

    rows = out.quarantine.to_pylist()
    assert [r["reason"] for r in rows] == ["unprocessable_record"]
    assert "secret" not in rows[0]["detail"] and "ZeroDivisionError" in rows[0]["detail"]
    assert out.observations.num_rows == 1


@pytest.mark.parametrize("effective", ["9999-12-31T23:59:59Z", "2999-01-01"])
def test_effective_times_in_the_future_are_quarantined(effective):
    future = dict(WEIGHT_OBS, effectiveDateTime=effective)  # fast path shape
    period = {k: v for k, v in future.items() if k != "effectiveDateTime"} | {
        "effectivePeriod": {"start": effective}}  # full rules only

    out = _run(future, period, json.dumps(WEIGHT_OBS))

    assert out.quarantine.column("reason").to_pylist() == ["implausible_date"] * 2
    assert out.observations.num_rows == 1


def test_the_future_tolerance_is_configurable():
    from datetime import UTC, datetime, timedelta

    from vitalflow.config import RefineSettings
    from vitalflow.refine.standardise import Standardiser

    soon = (datetime.now(UTC) + timedelta(hours=5)).isoformat()
    record = dict(WEIGHT_OBS, effectiveDateTime=soon)
    refine = RefineSettings()
    assert refine.future_tolerance_hours == 24
    for hours, quarantined in [(24, 0), (1, 1)]:
        standardiser = Standardiser(refine.observation_codes, refine.excluded_statuses, 1 << 20,
                                    future_tolerance=timedelta(hours=hours))
        out = standardiser.run(_raw([record]), None)
        assert out.quarantine.num_rows == quarantined, hours
