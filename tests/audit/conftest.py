"""Audit test fixtures: a control database with the audit schema, the roles, superuser access."""

from __future__ import annotations

import psycopg
import pytest

from vitalflow.privacy.identity import ensure_embedded_roles, ensure_identity_schema, grant_access


@pytest.fixture(scope="session")
def roles(pg_server) -> None:
    ensure_embedded_roles(pg_server.admin_url(), pg_server.passfile)


@pytest.fixture
def audit_db(database_url, roles) -> str:
    """A fresh database with the identity and audit schemas and their grants."""
    with psycopg.connect(database_url) as conn:
        ensure_identity_schema(conn)
        grant_access(conn)
    return database_url


@pytest.fixture
def admin(pg_server, audit_db):
    """A superuser connection to the test's database (to tamper, as an attacker with it would)."""
    name = psycopg.conninfo.conninfo_to_dict(audit_db)["dbname"]
    with psycopg.connect(pg_server.admin_url(name), autocommit=True) as conn:
        yield conn
