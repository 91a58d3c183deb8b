"""Terminology settings; credentials come only from the environment, never from config files."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

TOKEN_ENV = "VITALFLOW_TERMINOLOGY_TOKEN"
USER_ENV = "VITALFLOW_TERMINOLOGY_USER"
PASSWORD_ENV = "VITALFLOW_TERMINOLOGY_PASSWORD"

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


class TerminologySettings(BaseModel):
    """Where the terminology server is and how hard to try; see docs/terminology.md."""

    enabled: bool = True
    base_url: str = ""  # empty: start the local server from config/terminology/
    timeout_seconds: float = Field(10.0, gt=0)
    connect_timeout_seconds: float = Field(3.0, gt=0)
    retries: int = Field(3, ge=0)
    backoff_seconds: float = Field(0.5, ge=0)
    max_backoff_seconds: float = Field(30.0, ge=0)
    cache_ttl_hours: float = Field(24.0 * 7, ge=0)
    breaker_failures: int = Field(5, ge=1)
    breaker_reset_seconds: float = Field(30.0, ge=0)
    batch: bool = True
    batch_size: int = Field(100, ge=1)
    max_response_bytes: int = Field(8 * 1024 * 1024, gt=0)
    value_set: str = "http://hl7.org/fhir/ValueSet/observation-vitalsignresult"
    unit_value_set: str = ""  # empty: any code of the UCUM code system
    target_system: str = LOINC
    concept_maps: list[str] = ["http://vitalflow.example.org/fhir/ConceptMap/feeder-to-loinc"]

    def auth(self) -> tuple[str, str] | str | None:
        """Bearer token, (user, password) for basic auth, or None — from the environment."""
        token = os.environ.get(TOKEN_ENV)
        if token:
            return token
        user = os.environ.get(USER_ENV)
        if user:
            return user, os.environ.get(PASSWORD_ENV, "")
        return None
