"""SQL expressions of the derived metrics (categories, age bands) and derive's vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

from vitalflow.derive.metrics import age_band_labels
from vitalflow.tables import AGE_BAND_SUMMARY, PATIENT_BMI_LATEST

BMI_FLOW = PATIENT_BMI_LATEST.owner
SUMMARY_FLOW = AGE_BAND_SUMMARY.owner


@dataclass
class DeriveResult:
    changed_patients: int
    bmi_rows_written: int
    bmi_rows_deleted: int
    summary_rows_written: int
    summary_rows_deleted: int
    full_rebuild: bool


def category_sql(bmi: str, age: str) -> str:
    """WHO adult BMI categories; the SQL twin of metrics.weight_category."""
    return f"""CASE WHEN {bmi} IS NULL OR {age} IS NULL THEN 'unknown'
                    WHEN {age} < 18 THEN 'not_classified_under_18'
                    WHEN {bmi} < 18.5 THEN 'underweight'
                    WHEN {bmi} < 25 THEN 'normal'
                    WHEN {bmi} < 30 THEN 'overweight'
                    ELSE 'obese' END"""


def age_band_sql(age: str, bands: list[int]) -> str:
    labels = age_band_labels(bands)
    cases = " ".join(f"WHEN {age} >= {low} THEN '{label}'"
                     for low, label in reversed(list(zip(bands, labels, strict=True))))
    return f"CASE {cases} ELSE 'unknown' END"
