"""Read-only for everyone, refined and derived only for analysts: each refused statement is
refused with a clear message and logged, and the engine itself is locked underneath."""

from __future__ import annotations

import pytest

from vitalflow.sql.duck import DuckDBEngine, EngineError
from vitalflow.sql.policy import QueryRefused, check
from vitalflow.sql.service import SqlService
from vitalflow.sql.settings import RoleLimits

REFUSED = {
    "insert": ("INSERT INTO refined.patient (patient_key) VALUES ('x')", "DML"),
    "update": ("UPDATE refined.patient SET gender = 'x'", "DML"),
    "delete": ("DELETE FROM derived.patient_bmi_latest", "DML"),
    "create": ("CREATE TABLE refined.x AS SELECT 1 AS a", "DDL"),
    "drop": ("DROP TABLE refined.patient", "DDL"),
    "alter": ("ALTER TABLE refined.patient ADD COLUMN x int", "DDL"),
    "copy_to": ("COPY (SELECT * FROM refined.patient) TO '/tmp/out.csv'", "COPY"),
    "attach": ("ATTACH '/tmp/other.duckdb' AS other", "ATTACH"),
    "install": ("INSTALL httpfs", "INSTALL"),
    "load": ("LOAD httpfs", "LOAD"),
    "set": ("SET enable_external_access = true", "SET"),
    "pragma": ("PRAGMA database_list", "PRAGMA"),
    "read_csv": ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    "file_as_table": ("SELECT * FROM '/etc/passwd'", "unknown table"),
    "read_text_s3": ("SELECT * FROM read_text('s3://vitalflow/secrets')", "read_text"),
    "http": ("SELECT * FROM read_parquet('https://example.org/x.parquet')", "read_parquet"),
    "getenv": ("SELECT getenv('HOME')", "getenv"),
    "two_statements": ("SELECT 1; DROP TABLE refined.patient", "2 statements"),
    "select_into": ("SELECT * INTO refined.copy FROM refined.patient", "creates a table"),
    "cte_write": ("WITH x AS (SELECT 1) DELETE FROM refined.patient", "DML"),
    "other_catalog": ("SELECT * FROM pg0.identity.patient_identity", "layer.table"),
    "identity": ("SELECT * FROM identity.patient_identity", "restricted"),
    "audit": ("SELECT * FROM audit.event", "restricted"),
    "raw_for_analyst": ("SELECT raw_json FROM raw.record", "may not read"),
    "query_log_for_analyst": ("SELECT * FROM meta.query_log", "may not read"),
    "information_schema": ("SELECT * FROM information_schema.tables", "unknown table"),
}


@pytest.mark.parametrize("statement,says", REFUSED.values(), ids=REFUSED.keys())
def test_policy_refuses_with_a_clear_message(statement, says):
    with pytest.raises(QueryRefused, match="refused") as refused:
        check(statement, "analyst", "duckdb" if "ATTACH" in statement else "trino")
    assert says.lower() in str(refused.value).lower()


def test_admins_are_read_only_too():
    for statement, _ in REFUSED.values():
        if "raw.record" in statement or "meta.query_log" in statement:
            check(statement, "admin")
            continue
        with pytest.raises(QueryRefused):
            check(statement, "admin", "duckdb" if "ATTACH" in statement else "trino")


@pytest.mark.postgres
def test_refusals_are_logged_and_identity_stays_closed(profile_run):
    settings = profile_run("postgres")
    service = SqlService(settings)
    try:
        with pytest.raises(QueryRefused):
            service.query("SELECT * FROM identity.patient_identity", "ana", "analyst")
        log = service.log.recent("ana")
        assert log[0]["outcome"] == "refused" and "restricted" in log[0]["message"]
        service.query("SELECT count(*) AS n FROM refined.patient", "ana", "analyst")
        assert service.log.recent("ana")[0]["outcome"] == "ok"
        assert service.log.recent("ana")[0]["rows"] == 1
    finally:
        service.close()


@pytest.mark.postgres
@pytest.mark.parametrize("statement", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "COPY (SELECT 1 AS a) TO '/tmp/vitalflow-sql-escape.csv'",
    "SET enable_external_access = true",
    "SELECT * FROM pg0.identity.patient_identity",
    "INSTALL json",
    "ATTACH '/tmp/vitalflow-sql-escape.duckdb' AS escape",
    "SELECT * FROM read_text('/etc/hostname')",
])
def test_the_analyst_engine_is_locked_underneath_the_policy(profile_run, statement):
    """Defence in depth: statements the policy refuses also fail inside DuckDB itself."""
    engine = DuckDBEngine(profile_run("postgres"), "analyst")
    try:
        with pytest.raises(EngineError):
            engine.run(statement, frozenset(), timeout=30)
    finally:
        engine.close()


@pytest.mark.postgres
def test_row_limit_timeout_and_small_cells_per_role(profile_run):
    base = profile_run("postgres")
    settings = base.model_copy(update={"sql": base.sql.model_copy(update={
        "roles": {"analyst": RoleLimits(row_limit=5, timeout_seconds=1),
                  "admin": RoleLimits(row_limit=100_000, timeout_seconds=60)},
        "small_cell_k": 10})})
    service = SqlService(settings)
    try:
        limited = service.query("SELECT * FROM refined.observation", "ana", "analyst")
        assert (limited.table.num_rows, limited.truncated) == (5, True)
        from vitalflow.sql.duck import QueryTimeout

        with pytest.raises(QueryTimeout, match="cancelled"):
            # The filter makes the engine visit every combination (a bare count of a cross
            # join can be answered from the counts alone).
            service.query("SELECT count(*) AS n FROM refined.observation a, refined.observation "
                          "b, refined.observation c WHERE a.value + b.value + c.value > 0",
                          "ana", "analyst")
        assert service.log.recent("ana")[0]["outcome"] == "timeout"
        small = "SELECT sex, age_years, count(*) AS n FROM derived.patient_bmi_latest GROUP BY 1, 2"
        with pytest.raises(QueryRefused, match="fewer than 10"):
            service.query(small, "ana", "analyst")
        with pytest.raises(QueryRefused, match="fewer than 10"):  # no count asked for
            service.query("SELECT age_years, avg(bmi) AS b FROM derived.patient_bmi_latest "
                          "GROUP BY age_years", "ana", "analyst")
        with pytest.raises(QueryRefused, match="one SELECT"):
            service.query("SELECT count(*) AS n FROM refined.patient UNION ALL "
                          "SELECT count(*) AS n FROM refined.quarantine", "ana", "analyst")
        wide = service.query("SELECT count(*) AS n FROM derived.patient_bmi_latest", "ana",
                             "analyst")
        assert wide.rows[0]["n"] >= 10
        assert service.query(small, "adm", "admin").table.num_rows > 5  # admins: no rule
    finally:
        service.close()
