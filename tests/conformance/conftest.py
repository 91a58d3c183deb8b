"""The conformance suite runs every test against every backend; known gaps are declared here."""

from __future__ import annotations

import importlib

import pytest

# backend name -> module in this folder with `make_backend(request, tmp_path) -> Backend`
BACKENDS = {
    "postgres": "tests.conformance.backend_postgres",
    "iceberg-local": "tests.conformance.backend_iceberg",
    "iceberg-s3": "tests.conformance.backend_iceberg",
    "clickhouse": "tests.conformance.backend_clickhouse",
}

# (backend, test name) -> why it does not pass. Declared gaps run as strict xfail: a gap that
# starts passing fails the suite, so this list cannot go stale.
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("backend_name") if callspec else None
        reason = KNOWN_GAPS.get((name, item.originalname))
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def backend_name(request) -> str:
    return request.param


@pytest.fixture
def backend(request, backend_name, tmp_path):
    module = importlib.import_module(BACKENDS[backend_name])
    instance = module.make_backend(request, tmp_path, backend_name)
    yield instance
    instance.close()
