"""Dry run of the whitelist over an input folder: what would be filtered, written nowhere."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from vitalflow.ingest import IngestError
from vitalflow.ingest.parquet import RecordReader, discover_inputs, raw_table, resource_type_hint
from vitalflow.refine.standardise import Standardiser
from vitalflow.refine.whitelist import Context, Whitelist


@dataclass
class DryRunReport:
    """Per record one outcome: passed, filtered by the standardiser (out of scope), filtered by
    a whitelist rule (its first failing one), or quarantined (invalid)."""

    files: int = 0
    read: Counter = field(default_factory=Counter)  # resource type -> records
    passed: Counter = field(default_factory=Counter)  # resource type -> records
    quarantined: Counter = field(default_factory=Counter)  # resource type -> records
    scope_filtered: Counter = field(default_factory=Counter)  # standardiser reason -> records
    rule_filtered: Counter = field(default_factory=Counter)  # whitelist rule -> records
    errors: list[str] = field(default_factory=list)  # files that could not be read

    @property
    def total_read(self) -> int:
        return sum(self.read.values())

    @property
    def total_passed(self) -> int:
        return sum(self.passed.values())

    def rows(self, rule_names: list[str]) -> list[tuple[str, int]]:
        """(outcome, records) for every way out: each rule in order, then the standardiser's
        out-of-scope reasons, then invalid records."""
        return ([(rule, self.rule_filtered[rule]) for rule in rule_names]
                + [(f"out of scope: {reason}", n) for reason, n in self.scope_filtered.items()]
                + [("quarantined (invalid)", sum(self.quarantined.values()))])


def dry_run(input_path: Path, whitelist: Whitelist, standardiser: Standardiser,
            batch_rows: int = 25_000, source_system: str | None = None) -> DryRunReport:
    """Standardise and filter every input record in memory, as refine would."""
    report = DryRunReport()
    # Patients first, as in refine, so age rules on observations find their birth dates.
    paths = sorted(discover_inputs(input_path),
                   key=lambda p: resource_type_hint(p.name) != "Patient")
    births: pa.Table | None = None
    for path in paths:
        report.files += 1
        hint = resource_type_hint(path.name)
        reader = RecordReader(path)
        try:
            for numbers, texts, blobs in reader.chunks(batch_rows):
                records = raw_table("dry-run", path.name, numbers, texts, blobs)
                out = standardiser.run(records, hint)
                report.read.update(out.read)
                for (_resource, reason), n in out.filtered.items():
                    report.scope_filtered[reason] += n
                report.quarantined.update(out.quarantine.column("resource_type").to_pylist())
                patients = _filter(whitelist, out.patients, "Patient", report,
                                   Context(source_system=source_system))
                if patients.num_rows:
                    known = patients.select(["patient_key", "birth_date"])
                    births = known if births is None else pa.concat_tables([births, known])
                _filter(whitelist, out.observations, "Observation", report,
                        Context(source_system=source_system, birth_dates=births))
        except IngestError as exc:
            report.errors.append(str(exc))
    return report


def _filter(whitelist: Whitelist, table: pa.Table, resource_type: str, report: DryRunReport,
            context: Context) -> pa.Table:
    result = whitelist.apply(table, resource_type, context)
    report.passed[resource_type] += result.kept.num_rows
    report.rule_filtered.update(result.filtered)
    return result.kept
