"""A Patroni PostgreSQL cluster on 127.0.0.1 for the drills: etcd, three nodes, HAProxy in front."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import psycopg
from psycopg import sql

from vitalflow.drills.base import Teardown, private_dir, wait_until
from vitalflow.pg_passwords import new_password, scram_verifier, write_passfile
from vitalflow.services import (APP_DATABASE, APP_ROLE, SUPERUSER, _bin_dir, _ensure_system_user,
                                _is_root, _open_path_for, free_port)

PROJECT = Path(__file__).resolve().parents[2]
INFRA = PROJECT / "infra" / "ha"
REPLICATOR = "replicator"
_START_TIMEOUT = 180  # initdb, base backups and elections on a loaded 2-core machine
# Named in skip reasons: tests/ci_strict.py fails such a skip in CI, where make install ran.
INSTALL_HINT = "installed by infra/ha/install.sh (make install, as root)"


class ToolsMissing(RuntimeError):
    """etcd, HAProxy or Patroni is not installed; the message says what to install."""


def missing_tools() -> list[str]:
    """What `make install` (infra/ha/install.sh, the `ha` extra) should have installed."""
    missing = [f"{tool} (Debian {package})" for tool, package in
               (("etcd", "etcd-server"), ("haproxy", "haproxy")) if not shutil.which(tool)]
    if not _patroni().exists():
        missing.append("patroni (pip install 'vitalflow[ha]')")
    return missing


def _patroni() -> Path:
    """As root, the venv infra/ha/install.sh made for the system user; else the project's."""
    if _is_root():
        return PROJECT / ".vitalflow" / "cache" / "ha-venv" / "bin" / "patroni"
    return Path(sys.executable).parent / "patroni"


@dataclass
class Node:
    name: str
    dir: Path
    pg_port: int
    rest_port: int
    process: subprocess.Popen | None = None

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def rest(self, path: str, body: dict | None = None, timeout: float = 2,
             method: str | None = None) -> tuple[int, dict]:
        """Patroni's REST API: (status, JSON answer); status 0 when it does not answer."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.rest_port}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
            method=method or ("POST" if body else "GET"))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                raw = answer.read()
                status = answer.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        except (OSError, TimeoutError):
            return 0, {}
        try:
            return status, json.loads(raw or b"{}")
        except ValueError:
            return status, {"text": raw.decode(errors="replace")}


@dataclass
class Cluster:
    """Started by start(); everything it starts is registered on the drill's teardown."""

    root: Path
    synchronous: bool = True
    size: int = 3
    nodes: list[Node] = field(default_factory=list)
    primary_port: int = 0
    replica_port: int = 0
    admin_port: int = 0
    etcd_port: int = 0

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    def passfile(self, role: str) -> Path:
        """The superuser's password is the drill's own; the pipeline's passfile holds only
        the application role's (the replicator's lives in Patroni's environment only)."""
        return self.secrets / ("pgpass-admin" if role == SUPERUSER else "pgpass")

    def url(self, port: int | None = None, database: str = APP_DATABASE,
            role: str = APP_ROLE) -> str:
        return (f"postgresql://{role}@127.0.0.1:{port or self.primary_port}/{database}"
                f"?passfile={self.passfile(role)}")

    def replica_url(self, database: str = APP_DATABASE) -> str:
        return self.url(self.replica_port, database)

    def admin_url(self, port: int | None = None, database: str = "postgres") -> str:
        return self.url(port, database, SUPERUSER)

    # -- starting -------------------------------------------------------------------------

    def start(self, teardown: Teardown) -> None:
        missing = missing_tools()
        if missing:
            raise ToolsMissing(f"the postgres drills need {', '.join(missing)}, {INSTALL_HINT}")
        private_dir(self.root)
        passwords = {SUPERUSER: new_password(), REPLICATOR: new_password(),
                     APP_ROLE: new_password()}
        private_dir(self.secrets)
        for role in (SUPERUSER, APP_ROLE):
            write_passfile(self.passfile(role), {role: passwords[role]})
        self._start_etcd(teardown)
        self.nodes = [Node(f"pg{i}", self.root / f"pg{i}", free_port(), free_port())
                      for i in range(self.size)]
        if _is_root():  # Postgres refuses root: Patroni and its servers run as the system user,
            # which may pass through the cluster folder (group x), nobody else may.
            shutil.chown(self.root, group=_ensure_system_user()[1])
            self.root.chmod(0o710)
            _open_path_for(self.root.parent)
            _open_path_for(_bin_dir().parent)
            _open_path_for(_patroni().parent)
        for index, node in enumerate(self.nodes):
            self._start_node(node, passwords, teardown)
            if index == 0:  # the first node bootstraps; the others copy it
                wait_until(lambda: self.leader() is not None, _START_TIMEOUT, 0.5,
                           "a Patroni leader")
        wait_until(self._replicas_streaming, _START_TIMEOUT, 0.5, "replicas streaming")
        self._start_haproxy(teardown)
        self._create_app_database(passwords[APP_ROLE])

    def _start_etcd(self, teardown: Teardown) -> None:
        self.etcd_port, peer = free_port(), free_port()
        data = private_dir(self.root / "etcd")
        log = (self.root / "etcd.log").open("ab")
        os.chmod(log.name, 0o600)
        process = subprocess.Popen(
            ["etcd", "--name", "drill", "--data-dir", str(data / "data"),
             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"drill=http://127.0.0.1:{peer}", "--enable-v2=true"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        teardown.process(process)
        wait_until(lambda: _answers(f"http://127.0.0.1:{self.etcd_port}/health"), 60, 0.3,
                   "etcd answering")

    def _start_node(self, node: Node, passwords: dict[str, str], teardown: Teardown) -> None:
        private_dir(node.dir)
        private_dir(node.dir / "log")
        config = node.dir / "patroni.yml"
        config.write_text(Template((INFRA / "patroni.yml.template").read_text()).substitute(
            name=node.name, node_dir=node.dir, rest_port=node.rest_port, pg_port=node.pg_port,
            etcd_port=self.etcd_port, bin_dir=_bin_dir(),
            synchronous="true" if self.synchronous else "false"))
        config.chmod(0o600)
        kwargs: dict = {}
        if _is_root():
            kwargs["user"], kwargs["group"] = _ensure_system_user()
            for path in (node.dir, node.dir / "log", config):
                shutil.chown(path, *kwargs.values())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PATRONI"))}
        env.update(PATRONI_SUPERUSER_USERNAME=SUPERUSER,
                   PATRONI_SUPERUSER_PASSWORD=passwords[SUPERUSER],
                   PATRONI_REPLICATION_USERNAME=REPLICATOR,
                   PATRONI_REPLICATION_PASSWORD=passwords[REPLICATOR],
                   HOME=str(node.dir))
        node.process = subprocess.Popen(
            [str(_patroni()), str(config)], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=(node.dir / "log" / "stderr").open("ab"),
            start_new_session=True, **kwargs)
        # Last in, first out: Patroni (which stops its server fast), then a postmaster it left.
        teardown.callback(self._stop_postmaster, node)
        teardown.process(node.process, grace=30)

    @staticmethod
    def _stop_postmaster(node: Node) -> None:
        from vitalflow.processes import terminate

        pid = node.postmaster_pid()
        if pid and _is_postgres(pid):
            os.kill(pid, signal.SIGCONT)  # a partition drill may have stopped it
            os.kill(pid, signal.SIGINT)  # fast shutdown: clients are not waited for
            terminate(pid, 15)

    def _start_haproxy(self, teardown: Teardown) -> None:
        self.primary_port, self.replica_port, self.admin_port = (free_port(), free_port(),
                                                                  free_port())

        servers = "\n".join(f"    server {n.name} 127.0.0.1:{n.pg_port} check port "
                            f"{n.rest_port}" for n in self.nodes)

        config = self.root / "haproxy.cfg"
        config.write_text(Template((INFRA / "haproxy.cfg.template").read_text()).substitute(
            primary_port=self.primary_port, replica_port=self.replica_port,
            admin_port=self.admin_port, primary_servers=servers,
            replica_servers=servers))
        config.chmod(0o600)
        log = (self.root / "haproxy.log").open("ab")
        os.chmod(log.name, 0o600)
        process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        log.close()
        teardown.process(process)
        wait_until(self.writable, 60, 0.3, "a writable primary behind HAProxy")

    def _create_app_database(self, password: str) -> None:
        """The pipeline's role (least privilege: no superuser) and database, created once on
        the primary; SCRAM verifiers only, so no statement holds a password."""
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
                sql.Identifier(APP_ROLE), sql.Literal(scram_verifier(password))))
        self.create_database(APP_DATABASE)

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(APP_ROLE)))

    # -- looking --------------------------------------------------------------------------

    def members(self) -> list[dict]:
        for node in self.nodes:
            status, answer = node.rest("/cluster")
            if status == 200:
                return answer.get("members", [])
        return []

    def leader(self) -> Node | None:
        for member in self.members():
            if member.get("role") == "leader" and member.get("state") == "running":
                return self.node(member["name"])
        return None

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def sync_standby(self) -> Node | None:
        for member in self.members():
            if member.get("role") == "sync_standby":
                return self.node(member["name"])
        return None

    def _replicas_streaming(self) -> bool:
        members = self.members()
        streaming = [m for m in members if m.get("role") != "leader"
                     and m.get("state") == "streaming"]
        wanted_sync = not self.synchronous or any(m.get("role") == "sync_standby"
                                                  for m in members)
        return len(streaming) == self.size - 1 and wanted_sync

    def healthy(self) -> bool:
        """Leader, every replica streaming (one of them synchronous in synchronous mode)."""
        return self.leader() is not None and self._replicas_streaming()

    def writable(self) -> bool:
        try:
            with psycopg.connect(self.admin_url(), connect_timeout=2) as conn:
                return not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        except psycopg.Error:
            return False

    def haproxy_command(self, command: str) -> str:
        """A command for HAProxy's admin socket (e.g. 'disable server replicas/pg1')."""
        with socket.create_connection(("127.0.0.1", self.admin_port), timeout=5) as conn:
            conn.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    # -- breaking -------------------------------------------------------------------------

    def processes_of(self, node: Node) -> list[int]:
        """Patroni and the postmaster with all its children: what SIGSTOP cuts off."""
        pids = [node.process.pid] if node.process else []
        postmaster = node.postmaster_pid()
        if postmaster and _is_postgres(postmaster):
            pids.append(postmaster)
            pids.extend(_children(postmaster))
        return pids


def _is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found.extend(int(child) for child in task.read_text().split())
    return found


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (OSError, TimeoutError):
        return False
