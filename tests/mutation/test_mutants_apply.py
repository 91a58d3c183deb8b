"""Every declared mutant still applies: its snippet is in its file exactly once (a moved module
shows up here, not as a silently passing `make mutation`), and its tests exist."""

from __future__ import annotations

import pytest

from tests.mutation.mutants import MUTANTS
from tests.mutation.run import ROOT, SnippetNotFound, check


@pytest.mark.parametrize("mutant", MUTANTS, ids=[f"{i}-{m.file}" for i, m in
                                                 enumerate(MUTANTS, start=1)])
def test_mutant_applies(mutant):
    check(mutant)
    assert mutant.mutated != mutant.original
    for test in mutant.tests:
        assert (ROOT / test.split("::")[0]).is_file(), test


def test_a_missing_snippet_is_named(tmp_path):
    (tmp_path / "vitalflow" / "derive").mkdir(parents=True)
    (tmp_path / "vitalflow" / "derive" / "metrics.py").write_text("x = 1\n")
    with pytest.raises(SnippetNotFound, match="snippet not found in vitalflow/derive/metrics.py"):
        check(MUTANTS[10], tmp_path)
