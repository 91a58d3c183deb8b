"""Example queries: shown in the console, run by the tests on every engine and profile, timed by
the benchmark. Plain ANSI SQL, so Trino and DuckDB read them alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    name: str
    title: str
    sql: str


EXAMPLES = (
    Example("bmi_by_age_band", "BMI by age band", """\
SELECT CASE WHEN age_years < 18 THEN '0-17' WHEN age_years < 30 THEN '18-29'
            WHEN age_years < 45 THEN '30-44' WHEN age_years < 65 THEN '45-64'
            WHEN age_years < 80 THEN '65-79' ELSE '80+' END AS age_band,
       count(*) AS patients, round(avg(bmi), 2) AS mean_bmi
FROM derived.patient_bmi_latest
WHERE bmi IS NOT NULL AND age_years IS NOT NULL
GROUP BY 1
ORDER BY 1"""),
    Example("cohort", "A cohort: obese adults aged 40 to 70", """\
SELECT patient_key, sex, age_years, round(bmi, 1) AS bmi, weight_at
FROM derived.patient_bmi_latest
WHERE weight_category = 'obese' AND age_years BETWEEN 40 AND 70
ORDER BY bmi DESC, patient_key
LIMIT 50"""),
    Example("patient_history", "One patient's history by pseudonym", """\
SELECT o.effective_at, o.measure, o.value, o.unit, o.observation_id
FROM refined.observation o
-- put a pseudonym from refined.patient (p_...) in place of the sub-query
WHERE o.patient_key = (SELECT min(patient_key) FROM refined.patient)
ORDER BY o.effective_at, o.measure, o.observation_id"""),
    Example("categories", "Patients per WHO weight category", """\
SELECT weight_category, count(*) AS patients
FROM derived.patient_bmi_latest
GROUP BY weight_category
ORDER BY weight_category"""),
    Example("measures", "Observations per measure", """\
SELECT measure, unit, count(*) AS observations, round(avg(value), 2) AS mean_value
FROM refined.observation
GROUP BY measure, unit
ORDER BY measure"""),
    Example("age_band_summary", "The derived age-band summary", """\
SELECT age_band, sex, weight_category, patients, round(mean_bmi, 2) AS mean_bmi
FROM derived.age_band_summary
ORDER BY age_band, sex, weight_category"""),
    Example("quarantine", "Quarantine reasons", """\
SELECT reason, count(*) AS records
FROM refined.quarantine
GROUP BY reason
ORDER BY reason"""),
)
BY_NAME = {e.name: e for e in EXAMPLES}
