"""Issue 12, defect 3: a first start killed at any moment leaves a project that starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from vitalflow.services import EmbeddedPostgres, ServiceError, free_port

_UP = ("import sys; from pathlib import Path; from vitalflow.services import EmbeddedPostgres; "
       "EmbeddedPostgres(Path(sys.argv[1]), int(sys.argv[2])).up()")


def _works(server: EmbeddedPostgres) -> None:
    try:
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("vitalflow",)
    finally:
        server.down()


def test_a_half_made_cluster_is_initialised_again(project_dir: Path):
    # What an install killed during initdb left behind: PG_VERSION and the password file.
    (project_dir / "pgdata").mkdir(mode=0o700)
    (project_dir / "pgdata" / "PG_VERSION").write_text("17\n")
    (project_dir / "secrets").mkdir(mode=0o700)
    (project_dir / "secrets" / "initdb.pw").write_text("superuser-password\n")
    server = EmbeddedPostgres(project_dir, free_port())

    server.up()

    assert not (project_dir / "secrets" / "initdb.pw").exists()
    _works(server)


@pytest.mark.parametrize("when", ["staging", "cluster"])
def test_a_kill_during_the_first_start_is_repaired_by_the_next(project_dir: Path, when: str):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", _UP, str(project_dir), str(port)],
                               start_new_session=True, stderr=subprocess.DEVNULL)
    marker = {"staging": "pgdata.init-*/data/PG_VERSION", "cluster": "pgdata/PG_VERSION"}[when]
    deadline = time.monotonic() + 120
    while not list(project_dir.glob(marker)) and process.poll() is None:
        assert time.monotonic() < deadline, "initdb never started"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    server = EmbeddedPostgres(project_dir, port)
    server.up()
    _works(server)


def test_a_damaged_cluster_that_was_used_is_never_wiped(project_dir: Path):
    (project_dir / "pgdata").mkdir(mode=0o700)
    (project_dir / "pgdata" / "PG_VERSION").write_text("17\n")
    (project_dir / "pgdata" / "precious").write_text("data\n")
    (project_dir / "postgres.port").write_text("54329")  # it was started before

    with pytest.raises(ServiceError, match="damaged"):
        EmbeddedPostgres(project_dir, free_port()).up()

    assert (project_dir / "pgdata" / "precious").exists()
