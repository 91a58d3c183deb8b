"""A pipeline run's audit events: start (with settings and whitelist hashes), batches, rows, end."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from storage_backends.base import redact
from vitalflow.audit.trail import AuditTrail

if TYPE_CHECKING:
    from vitalflow.config import Settings
    from vitalflow.pipeline import PipelineRun


def settings_hash(settings: Settings) -> str:
    """SHA-256 of the effective settings (file, environment and overrides), URLs redacted."""
    text = redact(json.dumps(settings.model_dump(mode="json"), sort_keys=True, default=str))
    return hashlib.sha256(text.encode()).hexdigest()


def whitelist_hash(settings: Settings) -> str | None:
    """SHA-256 of the whitelist rules in force; None when filtering is off or has no file."""
    path: Path = settings.filter.path
    if not settings.filter.enabled or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


class RunAudit:
    """Events of one PipelineRun. The start is written in the same transaction as the run's
    ledger row (no run without its event); what follows is written after the work committed and
    never fails the run: a lost event is logged, the data stays."""

    def __init__(self, settings: Settings, run_id: str, profile: str | None) -> None:
        self.settings = settings
        self.run_id = run_id
        self.profile = profile or settings.storage.profile
        self.trail: AuditTrail | None = None

    def started(self, conn: psycopg.Connection, control_url: str) -> None:
        self.trail = AuditTrail(self.settings, control_url, self.run_id)
        self.trail.record("pipeline.run", conn=conn, outcome="started", params={
            "profile": self.profile, "settings_sha256": settings_hash(self.settings),
            "whitelist_sha256": whitelist_hash(self.settings)})

    @contextmanager
    def ingest(self, raw) -> Iterator[None]:
        """One event per batch the block adds to the raw store: file name and SHA-256 (names
        are kept, contents never)."""
        if self.trail is None or not self.trail.enabled:
            yield
            return
        before = {b.batch_id for b in raw.manifest()}
        yield
        for batch in raw.manifest():
            if batch.batch_id not in before:
                self.trail.record("ingest.batch", fail_closed=False, target="raw", params={
                    "file": Path(batch.source_uri).name, "file_sha256": batch.file_sha256,
                    "batch_id": batch.batch_id, "format": batch.format},
                    counts={"records": batch.records})

    def rebuild(self) -> None:
        """Before refined and derived are emptied: no rebuild without its event."""
        if self.trail is not None:
            self.trail.record("pipeline.rebuild", outcome="started", target="refined,derived",
                              params={"profile": self.profile})

    def finished(self, run: PipelineRun, error: BaseException | None) -> None:
        if self.trail is None:
            return
        try:
            if run.refined is not None:
                self.trail.record("refine.rows", fail_closed=False, target="refined",
                                  counts=run.counts())
            if run.derived is not None:
                self.trail.record("derive.rows", fail_closed=False, target="derived",
                                  counts=asdict(run.derived))
            self.trail.record("pipeline.run", fail_closed=False,
                              outcome="failed" if error else "succeeded", error=error,
                              params={"profile": self.profile},
                              counts={f"{k}_seconds": round(v, 3) for k, v in run.seconds.items()})
            self.trail.anchor()
        finally:
            self.trail.close()
