"""The pipeline as plain functions: ingest -> refine -> derive, used by the CLI and the flows."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from vitalflow.config import Settings
from vitalflow.database import OBSERVATION_PENDING
from vitalflow.derive import DeriveResult, derive_age_band_summary, derive_patient_bmi
from vitalflow.persons import reconcile_persons
from vitalflow.progress import Reporter, SilentReporter
from vitalflow.raw import IngestError, discover_inputs, skipped_inputs
from vitalflow.refine import RefineResult, refine
from vitalflow.run_ledger import claim_run
from vitalflow.storage import Layers, describe, open_layers
from vitalflow.tables import AGE_BAND_SUMMARY, DERIVED_TABLES, PATIENT_BMI_LATEST, REFINED_TABLES


@dataclass
class IngestSummary:
    files: int = 0
    new_batches: int = 0
    already_ingested: int = 0
    records: int = 0
    errors: list[str] = field(default_factory=list)
    # issue 12: partly readable files (their rest is one truncated_file record) and files
    # left out for their name, with a hint
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


def refine_stage(settings: Settings, layers: Layers, run_id: str,
                 reporter: Reporter | None = None) -> RefineResult:
    """In-database SQL when refined lives in the control PostgreSQL, else the portable path;
    then every patient record is given the person merging says it belongs to."""
    if layers.refined_in_control:
        result = refine(layers.control, layers.raw, settings, run_id, reporter)
    else:
        from vitalflow.refine_portable import refine_portable

        result = refine_portable(layers, settings, run_id, reporter)
    result.persons_moved = reconcile_persons(layers, settings)
    return result


def patient_bmi_stage(settings: Settings, layers: Layers, full: bool = False) -> dict[str, int]:
    if layers.all_in_control:
        return derive_patient_bmi(layers.control, settings.derive, full)
    from vitalflow.derive_portable import derive_patient_bmi_portable

    return derive_patient_bmi_portable(layers, settings.derive, full)


def age_band_summary_stage(settings: Settings, layers: Layers) -> dict[str, int]:
    if layers.all_in_control:
        return derive_age_band_summary(layers.control, settings.derive)
    from vitalflow.derive_portable import derive_age_band_summary_portable

    return derive_age_band_summary_portable(layers, settings.derive)


def derive_stage(settings: Settings, layers: Layers, full: bool = False) -> DeriveResult:
    bmi = patient_bmi_stage(settings, layers, full)
    summary = age_band_summary_stage(settings, layers)
    return DeriveResult(bmi["changed_patients"], bmi["written"], bmi["deleted"],
                        summary["written"], summary["deleted"], full)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def record_run(layers: Layers, run_id: str, status: str, counts: dict | None = None) -> None:
    with layers.control.connect() as conn:
        conn.execute("""
            INSERT INTO meta.run (run_id, started_at, status, counts) VALUES (%s, now(), %s, %s)
            ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status,
              counts = EXCLUDED.counts, finished_at = now()""",
                     (run_id, status, json.dumps(counts) if counts else None))


def run(settings: Settings, input_path: Path, reporter: Reporter | None = None,
        profile: str | None = None) -> dict:
    """Run all three stages on the profile's storage and return the run summary."""
    reporter = reporter or SilentReporter()
    layers = open_layers(settings, profile)
    try:
        return _run_stages(settings, layers, input_path, reporter)
    finally:
        layers.close()


def _run_stages(settings: Settings, layers: Layers, input_path: Path,
                reporter: Reporter) -> dict:
    run_id = new_run_id()
    # issue 12: held while the run lives, so a killed run's row can be marked 'abandoned'
    claim = claim_run(layers.control, run_id)
    try:
        return _run_claimed(settings, layers, input_path, reporter, run_id)
    finally:
        claim.close()


def _run_claimed(settings: Settings, layers: Layers, input_path: Path, reporter: Reporter,
                 run_id: str) -> dict:
    timings: dict[str, float] = {}
    record_run(layers, run_id, "running")
    try:
        lap = time.perf_counter()

        def timed(stage: str) -> None:
            nonlocal lap
            now = time.perf_counter()
            timings[stage], lap = now - lap, now

        ingested = ingest(settings, layers, input_path, reporter)
        timed("ingest")
        refined = refine_stage(settings, layers, run_id, reporter)
        timed("refine")
        derived = derive_stage(settings, layers)
        timed("derive")
    except BaseException:
        record_run(layers, run_id, "failed")
        raise
    summary = summarise(layers, run_id, ingested, refined, derived, timings)
    record_run(layers, run_id, "succeeded", summary["counts"])
    return summary


def summarise(layers: Layers, run_id: str, ingested: IngestSummary, refined: RefineResult,
              derived: DeriveResult, timings: dict[str, float]) -> dict:
    """A JSON-ready summary: this run's counts plus the current state of the tables."""
    tables = {t.qualified_name: layers.refined.count(t)
              for t in REFINED_TABLES + (OBSERVATION_PENDING,)}
    tables.update({t.qualified_name: layers.derived.count(t) for t in DERIVED_TABLES})
    latest = layers.derived.read(PATIENT_BMI_LATEST, ["weight_category"])
    categories = {row["values"]: row["counts"] for row in sorted(
        latest.column("weight_category").value_counts().to_pylist(),
        key=lambda r: r["values"])}
    bands = sorted(layers.derived.read(AGE_BAND_SUMMARY, [
        "age_band", "sex", "weight_category", "patients", "mean_bmi"]).to_pylist(),
        key=lambda r: (r["age_band"], r["sex"], r["weight_category"]))
    return {
        "run_id": run_id,
        "storage": describe(layers),
        "database_url": layers.control.url,
        "ingest": asdict(ingested),
        "counts": {t: c.as_dict() for t, c in sorted(refined.counts.items())},
        "quarantine_reasons": dict(refined.quarantine_reasons.most_common()),
        "filter_reasons": dict(refined.filter_reasons.most_common()),
        "promoted_orphans": refined.promoted_orphans,
        "persons_moved": refined.persons_moved,
        "terminology": refined.terminology,
        "derive": asdict(derived),
        "tables": tables,
        "bmi_categories": categories,
        "age_bands": bands,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
