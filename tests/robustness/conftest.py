"""Fixtures of the robustness tests: a private embedded PostgreSQL per module (tests here
break, kill and restart it, which the session server shared by other tests must not see)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from vitalflow.services import EmbeddedPostgres, free_port


@pytest.fixture(scope="module")
def own_pg():
    root = Path(tempfile.mkdtemp(prefix="vitalflow-robust-pg-"))
    server = EmbeddedPostgres(root, free_port())
    server.up()
    yield server
    server.down()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def project_dir():
    """A fresh folder for a project's .vitalflow. Not under pytest's basetemp: another pytest
    session on the machine resets its parent to 0700, which locks the server's user out."""
    root = Path(tempfile.mkdtemp(prefix="vitalflow-robust-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)
