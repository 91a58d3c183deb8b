"""Conformance fixture: chdb's in-process ClickHouse, one data path per process and a prefix
per test."""

import atexit
import functools
import shutil
import tempfile
import uuid

from storage_backends.clickhouse import ClickHouseBackend


@functools.cache
def chdb_url() -> str:
    """The one chdb data path of this test process (chdb cannot open a second one)."""
    root = tempfile.mkdtemp(prefix="vitalflow-test-chdb-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return f"chdb://{root}"


def make_backend(request, tmp_path, name: str) -> ClickHouseBackend:
    backend = ClickHouseBackend(chdb_url(), database_prefix=f"t{uuid.uuid4().hex[:12]}_")
    request.addfinalizer(lambda: drop_databases(backend))
    return backend


def drop_databases(backend: ClickHouseBackend) -> None:
    for (database,) in backend.client.query(
            "SELECT name FROM system.databases WHERE startsWith(name, {prefix:String})",
            parameters={"prefix": backend.database_prefix}).result_rows:
        backend.client.command(f"DROP DATABASE {database} SYNC")
