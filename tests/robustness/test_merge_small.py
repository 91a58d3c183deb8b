"""Issue 12, defect 9: merging never fails a run on small inputs; review without merging."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vitalflow import pipeline
from vitalflow.generate import generate

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("patients, seed, duplicates", [
    (100, 0, 0.0), pytest.param(500, 0, 0.0, marks=pytest.mark.slow)])
def test_merging_on_small_inputs_falls_back_with_a_warning(settings, tmp_path: Path, patients,
                                                          seed, duplicates, caplog):
    settings.merge.enabled = True
    generate(tmp_path / "in", patients, seed=seed, duplicate_share=duplicates)

    with caplog.at_level(logging.WARNING):
        summary = pipeline.run(settings, tmp_path / "in")

    assert summary["counts"]["Patient"]["refined"] > 0
    assert "identifiers only" in caplog.text  # Splink cannot be trained on these inputs


def test_merge_review_with_merging_off_says_so(settings, tmp_path: Path):
    from robustness.runs import vitalflow

    pipeline.run(settings, _tiny_input(tmp_path))  # merging off: no identity.review_pair
    env = {**__import__("os").environ, "VITALFLOW__DATABASE__URL": settings.database.url,
           "VITALFLOW__PATHS__HOME": str(settings.paths.home)}

    result = vitalflow(env, "merge", "review")

    assert result.returncode == 1, result.stderr
    assert "merge.enabled" in result.stderr and "Traceback" not in result.stderr


def _tiny_input(folder: Path) -> Path:
    generate(folder / "in", 5, seed=1)
    return folder / "in"
