"""Fixtures of the self-serve SQL tests: the pipeline run once per storage profile."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conformance.profiles import PROFILES, fresh_database, profile_settings
from vitalflow import pipeline
from vitalflow.generate import generate

ARTIFACTS = Path(__file__).resolve().parents[2] / ".vitalflow" / "test-artifacts" / "sql"


@pytest.fixture(scope="session")
def sql_generated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sql-generated")
    generate(folder, 120, seed=11, defect_rate=0.05)
    return folder


class _Profiles:
    """Settings of each profile with the generated input run once, made on first use."""

    def __init__(self, request, tmp_path_factory, pg_server, generated: Path) -> None:
        self.request, self.factory, self.pg_server = request, tmp_path_factory, pg_server
        self.generated = generated
        self.made: dict = {}

    def __call__(self, name: str):
        if name not in self.made:
            database = fresh_database(self.pg_server)
            url = database.__enter__()
            self.request.addfinalizer(lambda: database.__exit__(None, None, None))
            settings = profile_settings(name, self.factory.mktemp(f"sql-{name}"), url,
                                        self.request)
            pipeline.run(settings, self.generated)
            self.made[name] = settings
        return self.made[name]


@pytest.fixture(scope="session")
def profile_run(request, tmp_path_factory, pg_server, sql_generated):
    """profile_run(name) -> Settings of that profile after one pipeline run."""
    return _Profiles(request, tmp_path_factory, pg_server, sql_generated)


@pytest.fixture(params=list(PROFILES), ids=list(PROFILES))
def profile_name(request) -> str:
    return request.param


def normalised(rows: list[dict]) -> list[tuple]:
    """Rows comparable across engines: floats to 6 significant digits, times in UTC ISO form."""
    def value(v):
        if isinstance(v, float | Decimal):
            return float(f"{float(v):.6g}") if not math.isnan(float(v)) else "nan"
        if isinstance(v, datetime):
            return v.astimezone().isoformat() if v.tzinfo else v.isoformat() + "+00:00"
        if isinstance(v, date):
            return v.isoformat()
        return v
    return [tuple(value(v) for v in row.values()) for row in rows]


def run_suite(settings, role: str = "admin", engine: str = "duckdb") -> dict[str, list]:
    """The example queries' normalised rows, by example name."""
    from vitalflow.sql.examples import EXAMPLES
    from vitalflow.sql.service import SqlService

    service = SqlService(settings)
    try:
        return {e.name: normalised(service.query(e.sql, "test", role, engine).rows)
                for e in EXAMPLES}
    finally:
        service.close()
