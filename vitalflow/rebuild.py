"""Rebuild refined and derived from the raw layer: the full re-run incremental runs are checked
against, and the way back after a change of rules that must apply to old records too."""

from __future__ import annotations

from vitalflow import pipeline
from vitalflow.config import Settings
from vitalflow.control import target_of
from vitalflow.database import OBSERVATION_PENDING, ensure_layers
from vitalflow.derive import DeriveResult
from vitalflow.progress import Reporter
from vitalflow.refine import RefineResult
from vitalflow.storage import Layers
from vitalflow.tables import DERIVED_TABLES, REFINED_TABLES

# Ledger rows that say what the refined and derived tables already hold.
_LEDGERS = ("meta.refined_batch", "meta.derive_watermark", "meta.terminology_pending")


def reset_from_raw(layers: Layers) -> None:
    """Empty the refined and derived layers and forget what was refined into them; raw, the run
    log, pseudonym identities and merge decisions stay."""
    for table in REFINED_TABLES + (OBSERVATION_PENDING,):
        layers.refined.drop(table)
    for table in DERIVED_TABLES:
        layers.derived.drop(table)
    targets = sorted({target_of(layers.refined, layers.control),
                      target_of(layers.derived, layers.control)})
    with layers.control.connect() as conn:
        for ledger in _LEDGERS:
            conn.execute(f"DELETE FROM {ledger} WHERE target = ANY(%s)", (targets,))
    ensure_layers(layers)


def rebuild(settings: Settings, layers: Layers, reporter: Reporter | None = None
            ) -> tuple[RefineResult, DeriveResult]:
    """Refine every raw batch again into empty tables, then derive every person."""
    reset_from_raw(layers)
    run_id = pipeline.new_run_id()
    pipeline.record_run(layers, run_id, "running")
    try:
        refined = pipeline.refine_stage(settings, layers, run_id, reporter)
        derived = pipeline.derive_stage(settings, layers, full=True)
    except BaseException:
        pipeline.record_run(layers, run_id, "failed")
        raise
    pipeline.record_run(layers, run_id, "succeeded",
                        {t: c.as_dict() for t, c in sorted(refined.counts.items())})
    return refined, derived
