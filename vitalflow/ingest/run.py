"""The ingest stage: every input file into the profile's raw store; unreadable files reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vitalflow.config import Settings
from vitalflow.ingest.parquet import discover_inputs, skipped_inputs
from vitalflow.ingest.store import IngestError
from vitalflow.progress import Reporter

if TYPE_CHECKING:
    from vitalflow.storage import Layers


@dataclass
class IngestSummary:
    files: int = 0
    new_batches: int = 0
    already_ingested: int = 0
    records: int = 0
    errors: list[str] = field(default_factory=list)
    # Partly readable files (their rest is one truncated_file record), and files left out for
    # their name, with a hint.
    truncated: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def ingest(settings: Settings, layers: Layers, input_path: Path,
           reporter: Reporter | None = None) -> IngestSummary:
    """Copy every input file into the raw layer; unreadable files are reported, not fatal."""
    summary = IngestSummary(skipped=[{"file": name, "hint": hint}
                                     for name, hint in skipped_inputs(input_path)])
    for path in discover_inputs(input_path):
        summary.files += 1
        try:
            result = layers.raw.ingest(path, reporter, settings.ingest.batch_rows)
        except IngestError as exc:
            summary.errors.append(str(exc))
            continue
        if result.truncated:
            summary.truncated.append(path.name)
        if result.new:
            summary.new_batches += 1
            summary.records += result.batch.records
        else:
            summary.already_ingested += 1
    return summary
