"""Settings of record merging (the `[merge]` section once it is part of vitalflow's Settings)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

# Each rule yields the candidate pairs Splink scores; a pair found by several is scored once.
# Together they keep 100k patients to a few million comparisons while every realistic duplicate
# (a typo in one field, a move, a lost identifier) still shares at least one block.
DEFAULT_BLOCKING_RULES = (
    "l.birth_date = r.birth_date",
    "l.family_key = r.family_key and l.given_key = r.given_key and l.birth_year = r.birth_year",
    "l.family_key = r.family_key and l.postcode = r.postcode",
    "l.given_key = r.given_key and l.postcode = r.postcode and l.birth_year = r.birth_year",
)


class MergeSettings(BaseModel):
    """Thresholds, blocking and training of patient record merging."""

    enabled: bool = False
    # Pairs at or above this Splink match probability are merged into one person.
    match_probability: float = Field(0.95, gt=0, le=1)
    # Pairs from here up to match_probability are listed by `vitalflow merge review`.
    review_probability: float = Field(0.5, gt=0, le=1)
    # Identifier systems in order of preference for the deterministic rule; empty: the first
    # identifier that has both a system and a value.
    identifier_systems: list[str] = []
    # Source system of records whose meta.source is absent.
    default_source_system: str = "local"
    blocking_rules: list[str] = list(DEFAULT_BLOCKING_RULES)
    # Random pairs sampled to estimate u; more is steadier and slower.
    u_sample_pairs: float = Field(2e6, gt=0)
    seed: int = 42

    @model_validator(mode="after")
    def _review_below_match(self) -> MergeSettings:
        if self.review_probability > self.match_probability:
            raise ValueError("merge.review_probability must not exceed merge.match_probability")
        return self


def merge_settings(settings: object) -> MergeSettings:
    """The `merge` section of vitalflow Settings, or the defaults while it has none."""
    section = getattr(settings, "merge", None)
    if isinstance(section, MergeSettings):
        return section
    if isinstance(section, BaseModel):
        section = section.model_dump()
    return MergeSettings.model_validate(section or {})
