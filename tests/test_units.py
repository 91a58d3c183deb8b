"""Unit conversion, LOINC check digits and BMI arithmetic."""

import math

import pytest

from vitalflow.catalog import BMI, HEIGHT, WEIGHT, is_valid_loinc, normalise_unit
from vitalflow.derive.metrics import age_band, age_band_labels, age_in_years, bmi, weight_category


@pytest.mark.parametrize("value, unit, expected", [
    (180, "cm", 180), (1.8, "m", 180), (1800, "mm", 180), (70, "[in_i]", 177.8),
    (6, "[ft_i]", 182.88), (70, "in", 177.8), (6, "feet", 182.88),
])
def test_height_to_cm(value, unit, expected):
    assert HEIGHT.to_canonical(value, unit) == pytest.approx(expected)


@pytest.mark.parametrize("value, unit, expected", [
    (70, "kg", 70), (70000, "g", 70), (154.3235835, "[lb_av]", 70), (160, "[oz_av]", 4.5359237),
    (185, "lbs", 83.91458845),
])
def test_weight_to_kg(value, unit, expected):
    assert WEIGHT.to_canonical(value, unit) == pytest.approx(expected)


def test_unknown_units_are_not_converted():
    assert HEIGHT.to_canonical(10, "stone") is None
    assert WEIGHT.to_canonical(10, "cm") is None
    assert BMI.to_canonical(25, "kg/m2") == 25
    assert normalise_unit(" KG/M^2 ") == "kg/m2"


def test_ucum_codes_are_case_sensitive_but_aliases_are_not():
    assert HEIGHT.to_canonical(1, "M") is None  # UCUM 'M' is not metre
    assert WEIGHT.to_canonical(1, "LBS") == pytest.approx(0.45359237)


@pytest.mark.parametrize("code, valid", [("8302-2", True), ("29463-7", True), ("39156-5", True),
                                         ("8302-3", False), ("8302", False), ("abc-1", False),
                                         ("1009-0", True), ("1009-10", False)])
def test_loinc_check_digit(code, valid):
    assert is_valid_loinc(code) is valid


def test_bmi():
    assert bmi(70, 175) == pytest.approx(22.857142857)
    with pytest.raises(ValueError):
        bmi(70, 0)
    assert math.isclose(bmi(100, 200), 25.0)


@pytest.mark.parametrize("value, age, category", [
    (18.49, 30, "underweight"), (18.5, 30, "normal"), (24.99, 30, "normal"),
    (25.0, 30, "overweight"), (29.99, 30, "overweight"), (30.0, 30, "obese"),
    (35.0, 17, "not_classified_under_18"), (22.0, 18, "normal"), (None, 40, "unknown"),
    (22.0, None, "unknown"),
])
def test_who_categories(value, age, category):
    assert weight_category(value, age) == category


def test_age_and_bands():
    from datetime import date

    assert age_in_years(date(2000, 3, 1), date(2018, 2, 28)) == 17
    assert age_in_years(date(2000, 3, 1), date(2018, 3, 1)) == 18
    assert age_band_labels([0, 18, 65]) == ["0-17", "18-64", "65+"]
    assert age_band(64, [0, 18, 65]) == "18-64"
    # each band starts at its lower bound
    assert [age_band(a, [0, 18, 65]) for a in (0, 17, 18, 65)] == ["0-17", "0-17", "18-64", "65+"]
    assert age_band(90, [0, 18, 65]) == "65+"
    assert age_band(None, [0, 18, 65]) == "unknown"
