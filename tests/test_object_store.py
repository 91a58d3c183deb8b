"""The embedded S3 object store (SeaweedFS): loopback only, keys kept secret, data survives."""

from __future__ import annotations

import logging
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from storage_backends.base import BackendUnavailable
from storage_backends.iceberg import IcebergBackend
from vitalflow.object_store import SeaweedFS, credentials_file, s3_options
from vitalflow.services import free_port, port_is_free
from vitalflow.tables import Column, Table

SAMPLE = Table("conformance", "secret_check", "A table for error tests.", owner="test",
               columns=(Column("id", "text", "key", nullable=False),), primary_key=("id",))


def _listening(pid: int) -> list[tuple[str, int, str]]:
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return [(c.laddr.ip, c.laddr.port, "udp" if c.type == 2 else "tcp")
            for p in processes for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN or c.type == 2]


def _filesystem(options: dict) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(access_key=options["s3.access-key-id"],
                             secret_key=options["s3.secret-access-key"],
                             endpoint_override=options["s3.endpoint"], scheme="http",
                             region=options["s3.region"], connect_timeout=2, request_timeout=5)


@pytest.fixture
def own_server():
    """A second server beside the session's, under its own folder."""
    root = Path(tempfile.mkdtemp(prefix="vitalflow-test-s3-own-"))
    server = SeaweedFS(root, free_port())
    yield server
    server.down()
    shutil.rmtree(root, ignore_errors=True)


def test_every_port_is_on_loopback(s3_server):
    pid = s3_server.pid()
    listening = _listening(pid)
    assert s3_server.ports()["s3.port"] in {port for _, port, _ in listening}
    assert {ip for ip, _, _ in listening} == {"127.0.0.1"}, listening
    ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    mine = [line.split()[3] for line in ss.splitlines() if f"pid={pid}," in line]
    assert mine and all(address.startswith("127.0.0.1:") for address in mine), mine


def test_restart_keeps_data_keys_and_ports_beside_another_instance(s3_server, own_server):
    endpoint = own_server.up()
    assert endpoint != s3_server.endpoint and own_server.status()["running"]
    keys = credentials_file(own_server.root)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.parent.stat().st_mode) == 0o700
    content, ports = keys.read_text(), own_server.ports()
    with _filesystem(s3_options(own_server.root)).open_output_stream("vitalflow/a/b.txt") as out:
        out.write(b"kept")

    assert own_server.down() and not own_server.down()
    assert own_server.status()["running"] is False and own_server.pid() is None
    assert not [p for port in ports.values() for p in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]

    # Ports are reused while free; on a busy machine another process may have taken one.
    reusable = all(port_is_free(port) for port in ports.values())
    endpoint = own_server.up() if not reusable else endpoint
    if reusable:
        assert own_server.up() == endpoint and own_server.ports() == ports
    assert keys.read_text() == content
    with _filesystem(s3_options(own_server.root)).open_input_stream("vitalflow/a/b.txt") as inp:
        assert inp.read() == b"kept"
    assert own_server.status() | {"pid": None} == {
        "service": "SeaweedFS (S3)", "running": True, "pid": None, "endpoint": endpoint,
        "bucket": "vitalflow", "data": str(own_server.data_dir), "ports": ports}


def test_s3_options_take_endpoint_and_keys_from_the_environment(s3_server, monkeypatch):
    embedded = s3_options(s3_server.root)
    assert embedded["s3.endpoint"] == s3_server.endpoint
    assert embedded["s3.force-virtual-addressing"] == "false"
    monkeypatch.setenv("VITALFLOW__S3__ENDPOINT", "http://minio.example:9000")
    monkeypatch.setenv("VITALFLOW__S3__REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env")
    assert s3_options(s3_server.root) == {
        "s3.endpoint": "http://minio.example:9000", "s3.force-virtual-addressing": "false",
        "s3.region": "eu-central-1", "s3.access-key-id": "AKIAEXAMPLE",
        "s3.secret-access-key": "from-env"}
    monkeypatch.delenv("VITALFLOW__S3__ENDPOINT")
    aws = s3_options(Path("/nonexistent"))  # AWS S3: no endpoint, keys from the environment
    assert "s3.endpoint" not in aws and aws["s3.access-key-id"] == "AKIAEXAMPLE"


def test_s3_down_is_reported_clearly_and_keys_never_leak(own_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    own_server.up()
    options = s3_options(own_server.root)
    secrets = (options["s3.access-key-id"], options["s3.secret-access-key"])
    url = (f"iceberg+sqlite:///{tmp_path}/catalog.db?warehouse=s3://vitalflow/t")
    backend = IcebergBackend(url, s3=options)
    backend.create(SAMPLE)
    backend.upsert(SAMPLE, pa.table({"id": ["a"]}))

    wrong = IcebergBackend(url, s3=options | {"s3.secret-access-key": "wrong" + secrets[1]})
    with pytest.raises(BackendUnavailable, match="refused") as refused:
        wrong.read(SAMPLE)
    port = own_server.ports()["s3.port"]
    own_server.down()
    with pytest.raises(BackendUnavailable) as down:
        backend.read(SAMPLE)
    assert str(down.value) == (
        f"S3 at http://127.0.0.1:{port} is not reachable; start the embedded object store "
        "with `vitalflow services up` or set VITALFLOW__S3__ENDPOINT")
    texts = [caplog.text, repr(backend), repr(wrong), str(refused.value), str(down.value)]
    assert not [t for t in texts for s in secrets if s in t]
    backend.close()
    wrong.close()


def test_catalog_database_down_is_reported_clearly(tmp_path):
    url = (f"iceberg+postgresql://vitalflow@127.0.0.1:{free_port()}/vitalflow"
           f"?passfile={tmp_path}/pgpass&warehouse=file://{tmp_path}/warehouse")
    with pytest.raises(BackendUnavailable, match="Iceberg catalog database at postgresql"
                       r"\+psycopg://vitalflow@127.0.0.1:\d+/vitalflow.*is not reachable.*"
                       "vitalflow services up"):
        IcebergBackend(url).exists(SAMPLE)
