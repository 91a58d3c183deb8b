"""Pure metric functions: BMI, WHO weight category, age, age bands (mirrored in derive's SQL)."""

from __future__ import annotations

from datetime import date

ADULT_AGE = 18


def bmi(weight_kg: float, height_cm: float) -> float:
    """Body mass index in kg/m2."""
    if height_cm <= 0:
        raise ValueError("height must be positive")
    return weight_kg / (height_cm / 100.0) ** 2


def weight_category(bmi_value: float | None, age_years: int | None) -> str:
    """WHO adult category; children are not classified with adult cut-offs."""
    if bmi_value is None or age_years is None:
        return "unknown"
    if age_years < ADULT_AGE:
        return "not_classified_under_18"
    if bmi_value < 18.5:
        return "underweight"
    if bmi_value < 25:
        return "normal"
    if bmi_value < 30:
        return "overweight"
    return "obese"


def age_in_years(birth: date, on: date) -> int:
    """Completed years of age on a given day."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def age_band_labels(bands: list[int]) -> list[str]:
    """Labels for band lower bounds: [0, 18, 65] -> ['0-17', '18-64', '65+']."""
    uppers = [f"-{high - 1}" for high in bands[1:]] + ["+"]
    return [f"{low}{upper}" for low, upper in zip(bands, uppers, strict=True)]


def age_band(age_years: int | None, bands: list[int]) -> str:
    if age_years is None:
        return "unknown"
    labels = age_band_labels(bands)
    for low, label in reversed(list(zip(bands, labels, strict=True))):
        if age_years >= low:
            return label
    return "unknown"


def summarise_age_bands(rows: list[dict], bands: list[int]) -> list[dict]:
    """Patients and mean BMI per age band x sex x weight category, from patient_bmi_latest rows."""
    groups: dict[tuple[str, str, str], list[float | None]] = {}
    for row in rows:
        key = (age_band(row.get("age_years"), bands), row.get("sex") or "unknown",
               row["weight_category"])
        groups.setdefault(key, []).append(row.get("bmi"))
    summary = []
    for (band, sex, category), values in sorted(groups.items()):
        known = [v for v in values if v is not None]
        summary.append({"age_band": band, "sex": sex, "weight_category": category,
                        "patients": len(values),
                        "mean_bmi": round(sum(known) / len(known), 6) if known else None})
    return summary
