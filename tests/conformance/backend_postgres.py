"""Conformance fixture: a fresh database on the test session's embedded PostgreSQL."""

from storage_backends.postgres import PostgresBackend


def make_backend(request, tmp_path, name: str) -> PostgresBackend:
    return PostgresBackend(request.getfixturevalue("database_url"))
