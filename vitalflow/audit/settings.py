"""[audit] settings: whether the application writes events, where the anchors and their key live."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class AuditSettings(BaseModel):
    # Off only to measure the cost of auditing; the database side (schema, grants, the
    # re-identification event written by identity.reidentify itself) stays on regardless.
    enabled: bool = True
    # JSON lines of HMAC-signed head hashes, outside the database. Empty: <paths.home>/audit/.
    anchors_file: Path | None = None
    # HMAC key for the anchors: VITALFLOW_AUDIT_KEY wins; empty: <paths.home>/secrets/audit.key
    # (created on first use, mode 600). Never in the database, never in this file.
    key_file: Path | None = None
