"""The pipeline as plain functions: ingest -> refine -> derive, used by the CLI and the flows."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from storage_backends.postgres import PostgresBackend
from vitalflow.config import Settings
from vitalflow.database import ensure_database
from vitalflow.derive import DeriveResult, derive
from vitalflow.progress import Reporter, SilentReporter
from vitalflow.raw import IngestError, RawStore, discover_inputs
from vitalflow.refine import RefineResult, refine
from vitalflow.services import EmbeddedPostgres


def embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.paths.root, settings.database.embedded_port)


def database_url(settings: Settings) -> str:
    """The configured DSN, or the embedded server's (started if needed)."""
    return settings.database.url or embedded_postgres(settings).up()


def open_store(settings: Settings) -> PostgresBackend:
    store = PostgresBackend(database_url(settings))
    ensure_database(store)
    return store


@dataclass
class IngestSummary:
    files: int = 0
    new_batches: int = 0
    already_ingested: int = 0
    records: int = 0
    errors: list[str] = field(default_factory=list)


def ingest(settings: Settings, input_path: Path, reporter: Reporter | None = None
           ) -> IngestSummary:
    """Copy every input file into the raw layer; unreadable files are reported, not fatal."""
    raw = RawStore(settings.paths.raw)
    summary = IngestSummary()
    for path in discover_inputs(input_path):
        summary.files += 1
        try:
            result = raw.ingest(path, reporter, settings.ingest.batch_rows)
        except IngestError as exc:
            summary.errors.append(str(exc))
            continue
        if result.new:
            summary.new_batches += 1
            summary.records += result.batch.records
        else:
            summary.already_ingested += 1
    return summary


def refine_stage(settings: Settings, store: PostgresBackend, run_id: str,
                 reporter: Reporter | None = None) -> RefineResult:
    return refine(store, RawStore(settings.paths.raw), settings, run_id, reporter)


def derive_stage(settings: Settings, store: PostgresBackend, full: bool = False) -> DeriveResult:
    return derive(store, settings.derive, full=full)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def record_run(store: PostgresBackend, run_id: str, status: str, counts: dict | None = None) -> None:
    with store.connect() as conn:
        conn.execute("""
            INSERT INTO meta.run (run_id, started_at, status, counts) VALUES (%s, now(), %s, %s)
            ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status,
              counts = EXCLUDED.counts, finished_at = now()""",
                     (run_id, status, json.dumps(counts) if counts else None))


def run(settings: Settings, input_path: Path, reporter: Reporter | None = None) -> dict:
    """Run all three stages and return the run summary (see summarise)."""
    reporter = reporter or SilentReporter()
    timings: dict[str, float] = {}
    store = open_store(settings)
    run_id = new_run_id()
    record_run(store, run_id, "running")
    try:
        lap = time.perf_counter()

        def timed(stage: str) -> None:
            nonlocal lap
            now = time.perf_counter()
            timings[stage], lap = now - lap, now

        ingested = ingest(settings, input_path, reporter)
        timed("ingest")
        refined = refine_stage(settings, store, run_id, reporter)
        timed("refine")
        derived = derive_stage(settings, store)
        timed("derive")
    except BaseException:
        record_run(store, run_id, "failed")
        raise
    summary = summarise(store, run_id, ingested, refined, derived, timings)
    record_run(store, run_id, "succeeded", summary["counts"])
    return summary


def summarise(store: PostgresBackend, run_id: str, ingested: IngestSummary, refined: RefineResult,
              derived: DeriveResult, timings: dict[str, float]) -> dict:
    """A JSON-ready summary: this run's counts plus the current state of the tables."""
    with store.connect() as conn:
        tables = {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in (
            "refined.patient", "refined.observation", "refined.quarantine",
            "refined.observation_pending", "derived.patient_bmi_latest",
            "derived.age_band_summary")}
        categories = dict(conn.execute(
            "SELECT weight_category, count(*) FROM derived.patient_bmi_latest "
            "GROUP BY 1 ORDER BY 1").fetchall())
        bands = [dict(zip(("age_band", "sex", "weight_category", "patients", "mean_bmi"), row,
                          strict=True)) for row in conn.execute(
            "SELECT age_band, sex, weight_category, patients, mean_bmi "
            "FROM derived.age_band_summary ORDER BY 1, 2, 3").fetchall()]
    return {
        "run_id": run_id,
        "database_url": store.url,
        "ingest": asdict(ingested),
        "counts": {t: c.as_dict() for t, c in sorted(refined.counts.items())},
        "quarantine_reasons": dict(refined.quarantine_reasons.most_common()),
        "filter_reasons": dict(refined.filter_reasons.most_common()),
        "promoted_orphans": refined.promoted_orphans,
        "derive": asdict(derived),
        "tables": tables,
        "bmi_categories": categories,
        "age_bands": bands,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
