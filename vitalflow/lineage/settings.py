"""[lineage] settings: which lineage option is on and where OpenLineage events go."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LineageSettings(BaseModel):
    """file: refined rows keep the raw record id only (trace from keys); openlineage: also
    OpenLineage events for every job; hybrid: events plus a lineage table (docs/lineage.md)."""

    mode: Literal["file", "openlineage", "hybrid"] = "openlineage"
    # Where events go besides the event file kept under paths.home/lineage: none, console, http.
    transport: Literal["file", "console", "http"] = "file"
    # OpenLineage endpoint base (e.g. Marquez http://127.0.0.1:5000); empty with transport http:
    # the Marquez of `vitalflow services up marquez`.
    url: str = ""
    # Seconds one HTTP send may take; a slower or absent server leaves the event pending.
    timeout_seconds: float = Field(2.0, gt=0)
    namespace: str = "vitalflow"
    marquez_port: int = 5000
    marquez_admin_port: int = 5001

    @property
    def emits_events(self) -> bool:
        return self.mode in ("openlineage", "hybrid")
