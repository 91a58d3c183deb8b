"""Issue 12 chaos suite: hostile files neither crash nor hang a run, and every record they
hold is accounted for (read = refined + quarantined + filtered + duplicates + pending)."""

from __future__ import annotations

import resource

import pytest

from benchmarks.chaos.corpus import MAX_RECORD_BYTES, write_corpus
from vitalflow import pipeline

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_hostile_files_are_accounted_for(settings, tmp_path):
    settings.ingest.max_record_bytes = MAX_RECORD_BYTES
    write_corpus(tmp_path / "in")

    summary = pipeline.run(settings, tmp_path / "in")

    read = 0
    for counts in summary["counts"].values():
        assert counts["read"] == sum(counts[k] for k in (
            "refined", "quarantined", "filtered", "duplicates", "pending")), counts
        read += counts["read"]
    ingest = summary["ingest"]
    assert read == ingest["records"]
    assert ingest["truncated"] == ["Observation.truncated.ndjson.gz"]
    assert [s["file"] for s in ingest["skipped"]] == ["notes.csv"]
    reasons = summary["quarantine_reasons"]
    for reason in ("too_deeply_nested", "record_too_large", "malformed_json", "invalid_value",
                   "implausible_date", "truncated_file", "invalid_date", "out_of_range"):
        assert reasons.get(reason), (reason, reasons)
    # Memory stays bounded: the 64 MiB zip bomb line is never held more than a few times.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 3 * 1024 * 1024  # KiB
    again = pipeline.run(settings, tmp_path / "in")  # nothing new, nothing fails
    assert sum(c["read"] for c in again["counts"].values()) == 0
