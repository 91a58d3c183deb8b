"""The Marquez API server (Maven Central's marquez-api, on Java 17) against the project's
PostgreSQL, in its own database and role, on 127.0.0.1: `vitalflow services up|down marquez`."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import httpx
import psycopg

from vitalflow.config import Settings
from vitalflow.processes import pid_from_file, terminate
from vitalflow.services import EmbeddedPostgres, ServiceError, free_port, port_is_free

VERSION = os.environ.get("MARQUEZ_VERSION", "0.50.0")
JAVA = Path(os.environ.get("MARQUEZ_JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")) / "bin" / "java"
ROLE = DATABASE = "marquez"
HOST = "127.0.0.1"


def cache_dir() -> Path:
    base = os.environ.get("VITALFLOW_CACHE") or Path.home() / ".cache" / "vitalflow"
    return Path(base) / "marquez" / VERSION


class Marquez:
    """One Marquez under paths.home/marquez (config, pid, ports, log; all owner-only). Its role
    and database are created through the embedded PostgreSQL's admin connection; its password
    lives only in the rendered config file. The constructor does no I/O."""

    def __init__(self, settings: Settings, postgres: EmbeddedPostgres | None = None) -> None:
        self.settings = settings
        self.root = settings.paths.root / "marquez"
        self._postgres = postgres

    @property
    def postgres(self) -> EmbeddedPostgres:
        if self._postgres is None:
            from vitalflow.storage import embedded_postgres

            self._postgres = embedded_postgres(self.settings)
        return self._postgres

    config_file = property(lambda self: self.root / "marquez.yml")
    pidfile = property(lambda self: self.root / "marquez.pid")
    portfile = property(lambda self: self.root / "marquez.ports")
    logfile = property(lambda self: self.root / "marquez.log")

    def ports(self) -> tuple[int, int]:
        if self.portfile.exists():
            api, admin = self.portfile.read_text().split()
            return int(api), int(admin)
        return self.settings.lineage.marquez_port, self.settings.lineage.marquez_admin_port

    def api_url(self) -> str:
        """The API's base URL when this Marquez runs, else empty."""
        return f"http://{HOST}:{self.ports()[0]}" if self.pid() else ""

    def pid(self) -> int | None:
        return pid_from_file(self.pidfile, str(self.config_file))

    def status(self) -> dict:
        pid = self.pid()
        return {"service": "Marquez (OpenLineage)", "running": pid is not None, "pid": pid,
                "url": self.api_url() or None, "version": VERSION}

    def up(self, timeout: float = 300) -> str:
        """Start Marquez (its database created on first use), wait until its API answers and
        return the API URL."""
        if self.pid():
            return self.api_url()
        lib = cache_dir() / "lib"
        if not (cache_dir() / ".complete").exists():
            raise ServiceError(f"Marquez {VERSION} is not installed in {lib}: run "
                               "`bash infra/marquez/install.sh` (make install does)")
        if not JAVA.exists():
            raise ServiceError(f"Java 17 not found at {JAVA}: apt-get install -y "
                               "openjdk-17-jre-headless")
        if self.settings.database.url:
            raise ServiceError("the local Marquez uses the embedded PostgreSQL; with "
                               "database.url set, run your own Marquez and set lineage.url")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        api, admin = (p if port_is_free(p) else free_port() for p in self.ports())
        self.portfile.write_text(f"{api} {admin}\n")
        self._render_config(api, admin, self._ensure_database())
        fd = os.open(self.logfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(
                [str(JAVA), "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-cp", f"{lib}/*",
                 "marquez.MarquezApp", "server", str(self.config_file)],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.pidfile.write_text(str(process.pid))
        self._wait_ready(process, api, timeout)
        return self.api_url()

    def down(self, timeout: float = 60) -> bool:
        """Stop Marquez; False when it was not running."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        terminate(pid, timeout, kill_wait=10)
        self.pidfile.unlink(missing_ok=True)
        return True

    def _ensure_database(self) -> str:
        """Role and database `marquez` (the role owns only its database); its password."""
        self.postgres.up()
        secret = self.root / "role.pw"
        if not secret.exists():
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        password = secret.read_text().strip()
        with psycopg.connect(self.postgres.admin_url(), autocommit=True) as admin:
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            admin.execute(psycopg.sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                psycopg.sql.SQL(verb), psycopg.sql.Identifier(ROLE),
                psycopg.sql.Literal(password)))
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (DATABASE,)).fetchone():
                admin.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        return password

    def _render_config(self, api: int, admin: int, password: str) -> None:
        config = f"""\
server:
  applicationConnectors:
    - type: http
      bindHost: {HOST}
      port: {api}
  adminConnectors:
    - type: http
      bindHost: {HOST}
      port: {admin}
db:
  driverClass: org.postgresql.Driver
  url: jdbc:postgresql://{HOST}:{self.postgres.port}/{DATABASE}
  user: {ROLE}
  password: "{password}"
migrateOnStartup: true
search:
  enabled: false
logging:
  level: WARN
  loggers:
    marquez: INFO
"""
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(config)

    def _wait_ready(self, process: subprocess.Popen, api: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pidfile.unlink(missing_ok=True)
                raise ServiceError(f"Marquez exited with code {process.returncode} while "
                                   f"starting; the end of {self.logfile}:\n{self._log_tail()}")
            try:
                if httpx.get(f"http://{HOST}:{api}/api/v1/namespaces", timeout=5).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.down()
        raise ServiceError(f"Marquez did not answer within {timeout:.0f} s; the end of "
                           f"{self.logfile}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.logfile.read_text(errors="replace")[-3000:] if self.logfile.exists() else ""
