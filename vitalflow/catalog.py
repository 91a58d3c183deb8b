"""The measures vitalflow standardises: LOINC codes, canonical UCUM units, conversions, ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Measure:
    """One observation code with its canonical unit and plausible range (in that unit)."""

    name: str
    code: str
    display: str
    unit: str
    factors: dict[str, float] = field(default_factory=dict)  # UCUM code -> factor to canonical
    low: float = 0.0
    high: float = float("inf")

    def to_canonical(self, value: float, unit: str) -> float | None:
        """Value in the canonical unit, or None when the unit is not convertible."""
        factor = self.factors.get(normalise_unit(unit))
        return None if factor is None else value * factor


HEIGHT = Measure(
    "body_height", "8302-2", "Body height", "cm",
    {"cm": 1.0, "m": 100.0, "mm": 0.1, "[in_i]": 2.54, "[ft_i]": 30.48},
    low=20.0, high=275.0,
)
WEIGHT = Measure(
    "body_weight", "29463-7", "Body weight", "kg",
    {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "[oz_av]": 0.028349523125},
    low=0.2, high=650.0,
)
BMI = Measure(
    "bmi", "39156-5", "Body mass index (BMI) [Ratio]", "kg/m2",
    {"kg/m2": 1.0},
    low=5.0, high=250.0,
)
MEASURES: dict[str, Measure] = {m.code: m for m in (HEIGHT, WEIGHT, BMI)}

# Free-text units seen in feeds (valueQuantity.unit without a UCUM code) mapped to UCUM.
_UNIT_ALIASES = {
    "centimeter": "cm", "centimeters": "cm", "metre": "m", "meter": "m", "meters": "m",
    "millimeter": "mm", "in": "[in_i]", "inch": "[in_i]", "inches": "[in_i]",
    "ft": "[ft_i]", "foot": "[ft_i]", "feet": "[ft_i]",
    "kilogram": "kg", "kilograms": "kg", "kgs": "kg", "gram": "g", "grams": "g",
    "lb": "[lb_av]", "lbs": "[lb_av]", "pound": "[lb_av]", "pounds": "[lb_av]",
    "oz": "[oz_av]", "ounce": "[oz_av]", "ounces": "[oz_av]",
    "kg/m^2": "kg/m2", "kg/m²": "kg/m2",
}


def normalise_unit(unit: str) -> str:
    """UCUM code for a unit string; case is kept for UCUM codes, aliases are case-insensitive."""
    unit = unit.strip()
    return _UNIT_ALIASES.get(unit.lower(), unit)


_LOINC_SHAPE = re.compile(r"^(\d{1,7})-(\d)$")


def loinc_check_digit(number: str) -> int:
    """LOINC's mod-10 check digit for the part before the hyphen."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit = digit // 10 + digit % 10
        total += digit
    return (10 - total % 10) % 10


def is_valid_loinc(code: str) -> bool:
    """True when the code has LOINC's shape and its check digit is right."""
    match = _LOINC_SHAPE.match(code)
    return bool(match) and loinc_check_digit(match.group(1)) == int(match.group(2))
