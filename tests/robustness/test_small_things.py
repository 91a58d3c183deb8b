"""Issue 12, defect 9: abandoned runs, out-of-range ports, a port taken at the last moment."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from robustness.runs import project_env, vitalflow
from vitalflow import pipeline
from vitalflow.generate import generate
from vitalflow.control import claim_run
from vitalflow.services import EmbeddedPostgres, ServiceError
from vitalflow.storage import open_layers


@pytest.mark.postgres
def test_runs_left_running_by_a_killed_process_are_marked_abandoned(settings, tmp_path: Path):
    generate(tmp_path / "in", 5, seed=1)
    layers = open_layers(settings)
    try:
        alive = claim_run(layers.control, "run-still-alive")  # another process, still running
        with psycopg.connect(settings.database.url, autocommit=True) as conn:
            for run_id in ("run-killed", "run-still-alive"):
                conn.execute("INSERT INTO meta.run (run_id, started_at, status) "
                             "VALUES (%s, now(), 'running')", (run_id,))
            pipeline.run(settings, tmp_path / "in")
            statuses = dict(conn.execute("SELECT run_id, status FROM meta.run").fetchall())
        alive.close()
    finally:
        layers.close()
    assert statuses.pop("run-killed") == "abandoned"
    assert statuses.pop("run-still-alive") == "running"
    assert list(statuses.values()) == ["succeeded"]


@pytest.mark.parametrize("port", [70000, 0, -1])
def test_an_out_of_range_port_is_a_clear_error(project_dir: Path, port: int):
    with pytest.raises(ServiceError, match="from 1 to 65535"):
        EmbeddedPostgres(project_dir, port).up()
    env = project_env(project_dir / "home") | {"VITALFLOW__DATABASE__EMBEDDED_PORT": str(port)}
    result = vitalflow(env, "services", "up", "postgres")
    assert result.returncode == 1 and "from 1 to 65535" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_taken_between_choosing_and_binding_means_another_port(project_dir, monkeypatch):
    import vitalflow.services as services

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        # The check said free; another program bound it a moment later.
        monkeypatch.setattr(services, "port_is_free", lambda port, host="127.0.0.1": True)
        server = EmbeddedPostgres(project_dir, taken)
        try:
            server.up()
            assert server.port != taken
            with psycopg.connect(server.url()) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            server.down()
