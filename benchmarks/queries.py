"""The analytical queries benchmarked on every profile: what an analyst asks of refined and
derived, through the storage interface (filters run in the engine, grouping in DuckDB)."""

from __future__ import annotations

import random
from collections.abc import Callable

import duckdb
import pyarrow as pa

from vitalflow.config import Settings
from vitalflow.derive.sql import age_band_sql
from vitalflow.storage import Layers
from vitalflow.tables import OBSERVATION, PATIENT, PATIENT_BMI_LATEST

COHORT = {"weight_category": "obese", "min_age": 40, "max_age": 64}
PARAMETER_PATIENTS = 200  # patients sampled for the one-patient-history query


def age_band_summary(layers: Layers, settings: Settings, params: dict, rng: random.Random
                     ) -> pa.Table:
    """Persons per age band, sex and weight category with mean BMI, from the latest metrics."""
    latest = layers.derived.read(PATIENT_BMI_LATEST,  # noqa: F841 - DuckDB reads it by name
                                 ["age_years", "sex", "weight_category", "bmi"])
    return duckdb.connect().execute(f"""
        SELECT {age_band_sql('age_years', settings.derive.age_bands)} AS age_band, sex,
               weight_category, count(*) AS persons, avg(bmi) AS mean_bmi
          FROM latest GROUP BY ALL ORDER BY ALL""").arrow().read_all()


def patient_history(layers: Layers, settings: Settings, params: dict, rng: random.Random
                    ) -> pa.Table:
    """Every refined observation of one patient record, oldest first."""
    key = rng.choice(params["patients"])
    rows = layers.refined.read(OBSERVATION, ["observation_id", "measure", "value", "unit",
                                             "effective_at"], where=[("patient_key", "=", key)])
    return rows.sort_by("effective_at")


def cohort_filter(layers: Layers, settings: Settings, params: dict, rng: random.Random
                  ) -> pa.Table:
    """Obese adults of 40 to 64 by their latest weight: who they are and their BMI."""
    return layers.derived.read(PATIENT_BMI_LATEST, ["patient_key", "sex", "age_years", "bmi"],
                               where=[("weight_category", "=", COHORT["weight_category"]),
                                      ("age_years", ">=", COHORT["min_age"]),
                                      ("age_years", "<=", COHORT["max_age"])])


QUERIES: dict[str, Callable[..., pa.Table]] = {
    "age_band_summary": age_band_summary,
    "patient_history": patient_history,
    "cohort_filter": cohort_filter,
}


def choose_parameters(layers: Layers, seed: int = 0) -> dict:
    """Patient keys for the history query, sampled once so every profile asks the same."""
    keys = sorted(layers.refined.read(PATIENT, ["patient_key"]).column("patient_key").to_pylist())
    return {"patients": random.Random(seed).sample(keys, min(PARAMETER_PATIENTS, len(keys)))}
