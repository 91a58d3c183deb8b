"""The example query suite on the embedded engine over every storage profile: the same rows as
on the PostgreSQL profile, whatever engine holds each layer."""

from __future__ import annotations

import pytest

from tests.sql.conftest import run_suite
from vitalflow.sql.service import SqlService

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="session")
def reference_rows(profile_run):
    return run_suite(profile_run("postgres"))


def test_query_suite_returns_the_postgres_profiles_rows(profile_name, profile_run,
                                                        reference_rows):
    rows = run_suite(profile_run(profile_name))
    assert all(reference_rows[name] for name in ("bmi_by_age_band", "patient_history",
                                                 "categories", "measures")), reference_rows
    for name, expected in reference_rows.items():
        assert rows[name] == expected, (profile_name, name)


def test_raw_layer_is_readable_by_admins(profile_name, profile_run):
    service = SqlService(profile_run(profile_name))
    try:
        result = service.query("SELECT count(*) AS records, count(DISTINCT batch_id) AS batches "
                               "FROM raw.record", "test", "admin")
    finally:
        service.close()
    assert result.rows[0]["records"] > 0 and result.rows[0]["batches"] == 2


def test_trino_dialect_is_translated_for_duckdb(profile_run):
    service = SqlService(profile_run("postgres"))
    try:
        row = service.query("SELECT approx_percentile(bmi, 0.5) AS median_bmi, "
                            "count_if(bmi >= 30) AS obese, date_format(max(weight_at), '%Y') "
                            "AS latest_year FROM derived.patient_bmi_latest", "t", "analyst").rows[0]
        duck = service.query("SELECT list_sort([3, 1, 2]) AS l", "t", "analyst", dialect="duckdb")
    finally:
        service.close()
    assert 10 < row["median_bmi"] < 60 and row["obese"] > 0 and len(row["latest_year"]) == 4
    assert duck.rows == [{"l": [1, 2, 3]}]
