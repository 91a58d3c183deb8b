"""[privacy] settings: where the key comes from and how quasi-identifiers are generalised."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class PrivacySettings(BaseModel):
    enabled: bool = True
    # A file holding the key; the environment variable VITALFLOW_PSEUDONYM_KEY wins over it.
    # Unset: a development key is created under <paths.home>/secrets/ (unless require_key).
    key_file: Path | None = None
    # Production: refuse to start without a configured key instead of creating one.
    require_key: bool = False
    # Names the system the input's Patient ids come from; part of every pseudonym, so the same
    # id from two systems gives two pseudonyms.
    source_system: str = Field("fhir", min_length=1)
    birth_date: Literal["year", "month", "none"] = "year"
    # Leading characters of a postcode kept (0 drops it).
    postcode_digits: int = Field(3, ge=0)
    # Every date of one patient moves by the same secret number of days in [-N, N]; 0 = off.
    date_shift_days: int = Field(0, ge=0, le=3650)
