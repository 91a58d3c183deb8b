"""The Trino service: config rendered from infra/trino/ templates with the real ports and
credentials (files owner-only), one JVM on 127.0.0.1 with a small heap, data under paths.home."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from vitalflow.config import PROJECT_ROOT, Settings
from vitalflow.privacy.identity import ANALYST as PG_ANALYST
from vitalflow.processes import pid_from_file, terminate
from vitalflow.services import ServiceError, free_port, port_is_free

TEMPLATES = PROJECT_ROOT / "infra" / "trino"
INSTALL_HINT = "run `make install` (infra/trino/install.sh puts Trino in ~/.cache/vitalflow/trino)"


def layer_engines(settings: Settings, profile: str | None = None) -> dict[str, str]:
    """layer -> the engine holding it (postgresql, iceberg, clickhouse) for the profile."""
    placement = settings.storage.placement(profile)
    engines = {}
    for layer in ("refined", "derived"):
        engine = getattr(placement, layer)
        scheme = urlsplit(engine).scheme if "://" in engine else engine
        engines[layer] = ("postgresql" if scheme.startswith("postgres") else
                          "iceberg" if scheme.startswith("iceberg") else
                          "clickhouse" if scheme in ("clickhouse", "chdb", "clickhouses") else
                          scheme)
    return engines


class TrinoServer:
    """`vitalflow services up|down|status trino`."""

    def __init__(self, settings: Settings, profile: str | None = None) -> None:
        self.settings = settings
        self.profile = profile
        self.root = settings.paths.root / "trino"

    @property
    def home(self) -> Path:
        configured = self.settings.sql.trino_home
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return (Path(configured) if configured else cache / "vitalflow" / "trino"
                / f"trino-server-{self.settings.sql.trino_version}")

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def pidfile(self) -> Path:
        return self.root / "trino.pid"

    @property
    def portfile(self) -> Path:
        return self.root / "trino.port"

    @property
    def logfile(self) -> Path:
        return self.root / "trino.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.portfile.read_text().strip()}"

    def pid(self) -> int | None:
        return pid_from_file(self.pidfile, f"-Dconfig={self.etc}/config.properties")

    def status(self) -> dict:
        pid = self.pid()
        return {"service": "Trino", "running": pid is not None, "pid": pid,
                "url": self.url if pid and self.portfile.exists() else None,
                "installed": (self.home / "lib").is_dir(), "home": str(self.home),
                "data": str(self.root)}

    def up(self, timeout: float = 240) -> str:
        """Start Trino (config written anew from the templates) and return its URL."""
        if self.pid() is not None:
            return self.url
        java = self._java()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        port = self.settings.sql.trino_port
        port = port if port_is_free(port) else free_port()
        self._render(port)
        jvm = [line for line in (self.etc / "jvm.config").read_text().splitlines() if line]
        command = [str(java), *jvm, f"-Dconfig={self.etc}/config.properties",
                   f"-Dlog.levels-file={self.etc}/log.properties",
                   "-cp", f"{self.home}/lib/*", "io.trino.server.TrinoServer"]
        with self.logfile.open("ab") as log:
            process = subprocess.Popen(command, cwd=self.root / "data", stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.pidfile.write_text(str(process.pid))
        self.portfile.write_text(str(port))
        self._wait_ready(process, timeout)
        return self.url

    def down(self, timeout: float = 60) -> bool:
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        terminate(pid, timeout, kill_wait=10)
        return True

    def _java(self) -> Path:
        if not (self.home / "lib").is_dir():
            raise ServiceError(f"Trino is not installed in {self.home}: {INSTALL_HINT}")
        marker = self.home / ".java-home"
        java_home = Path(os.environ.get("VITALFLOW_TRINO_JAVA_HOME") or (
            marker.read_text().strip() if marker.exists() else ""))
        if not (java_home / "bin" / "java").exists():
            raise ServiceError(f"Trino {self.settings.sql.trino_version} needs Java 24+: set "
                               "VITALFLOW_TRINO_JAVA_HOME to a JDK 25 (docs/sql.md)")
        return java_home / "bin" / "java"

    def _render(self, port: int) -> None:
        """etc/ from the templates; catalogs for the engines that hold the profile's layers.
        Files are owner-only: the catalogs hold passwords, which never go on a command line."""
        catalog = self.etc / "catalog"
        if catalog.exists():
            for old in catalog.glob("*.properties"):
                old.unlink()
        catalog.mkdir(parents=True, exist_ok=True)
        for folder in (self.etc, catalog, self.root / "data"):
            folder.mkdir(exist_ok=True)
            folder.chmod(0o700)
        heap = self.settings.sql.trino_heap
        heap_mb = int(heap[:-1]) * (1024 if heap.upper().endswith("G") else 1)
        values = {"port": port, "etc": self.etc,
                  "plugin_dir": self.home / "plugin", "heap": heap,
                  "query_memory": f"{heap_mb // 2}MB", "headroom": f"{heap_mb // 4}MB"}
        for name in ("config.properties", "jvm.config", "access-control.properties",
                     "rules.json", "log.properties"):
            _write(self.etc / name, (TEMPLATES / name).read_text(), values)
        for name, values in self._catalogs().items():
            _write(catalog / f"{name}.properties",
                   (TEMPLATES / "catalog" / f"{name}.properties").read_text(), values)

    def _catalogs(self) -> dict[str, dict]:
        from vitalflow.storage import control_url, engine_url

        settings = self.settings
        control = control_url(settings)
        engines = layer_engines(settings, self.profile)
        placement = settings.storage.placement(self.profile)
        catalogs: dict[str, dict] = {}
        if "postgresql" in engines.values():
            urls = {engine_url(settings, getattr(placement, layer), control)
                    for layer, engine in engines.items() if engine == "postgresql"}
            if len(urls) > 1:
                raise ServiceError("refined and derived live in two PostgreSQL databases; "
                                   "Trino's postgresql catalog reaches one")
            catalogs["postgresql"] = _postgres_values(urls.pop(), PG_ANALYST)
        if "iceberg" in engines.values():
            catalogs["iceberg"] = self._iceberg_values(control)
        if "clickhouse" in engines.values():
            catalogs["clickhouse"] = self._clickhouse_values()
        return catalogs

    def _iceberg_values(self, control: str) -> dict:
        from vitalflow.object_store import s3_options
        from vitalflow.storage import embedded_object_store

        settings = self.settings
        if settings.iceberg.catalog_url and "postgresql" not in settings.iceberg.catalog_url:
            raise ServiceError("Trino reads Iceberg through a JDBC catalog in PostgreSQL; "
                               "iceberg.catalog_url names another catalog")
        catalog = settings.iceberg.catalog_url.removeprefix("iceberg+") or control
        warehouse = (parse_qs(urlsplit(catalog).query).get("warehouse", [""])[0]
                     or settings.iceberg.warehouse or f"s3://{settings.s3.bucket}/warehouse")
        if not settings.s3.endpoint:
            embedded_object_store(settings).up()
        s3 = s3_options(settings.paths.root, settings.s3.endpoint or None, settings.s3.region)
        return {**_postgres_values(catalog), "warehouse": warehouse,
                "s3_endpoint": s3.get("s3.endpoint", "https://s3.amazonaws.com"),
                "s3_region": s3["s3.region"], "s3_access_key": s3.get("s3.access-key-id", ""),
                "s3_secret_key": s3.get("s3.secret-access-key", "")}

    def _clickhouse_values(self) -> dict:
        url = urlsplit(self.settings.clickhouse.url)
        if url.scheme not in ("clickhouse", "clickhouses"):
            raise ServiceError("the ClickHouse layers live in the in-process engine (chdb), "
                               "which Trino cannot reach: set clickhouse.url to a server")
        return {"host": url.hostname, "port": url.port or 8123, "user": url.username or
                "default", "password": os.environ.get("VITALFLOW_CLICKHOUSE_PASSWORD", "")}

    def _wait_ready(self, process: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                self.pidfile.unlink(missing_ok=True)
                raise ServiceError(f"Trino exited with code {process.returncode} while "
                                   f"starting; the end of {self.logfile}:\n{self._log_tail()}")
            try:
                info = httpx.get(f"{self.url}/v1/info", timeout=5).json()
                if not info.get("starting", True) and self._answers_queries():
                    return
            except (httpx.HTTPError, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                self.down()
                raise ServiceError(f"Trino did not start within {timeout:.0f} s; the end of "
                                   f"{self.logfile}:\n{self._log_tail()}")
            time.sleep(1)

    def _answers_queries(self) -> bool:
        """Done starting is not yet ready: until its node has registered, Trino answers "No
        nodes available to run query" (seconds on a loaded machine)."""
        answer = httpx.post(f"{self.url}/v1/statement", content="SELECT 1", timeout=10,
                            headers={"X-Trino-User": "vitalflow"}).json()
        while "nextUri" in answer:
            answer = httpx.get(answer["nextUri"], timeout=10).json()
        return "error" not in answer

    def _log_tail(self) -> str:
        return self.logfile.read_text(errors="replace")[-3000:] if self.logfile.exists() else ""


def _postgres_values(url: str, role: str | None = None) -> dict:
    """Host, port, database, user and password (from the URL's passfile) of a libpq URL;
    as role when the passfile has its password (the embedded server's analyst)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    user = unquote(parts.username or "")
    passfile = Path(query.get("passfile", [os.environ.get("PGPASSFILE", "")])[0] or "/nonexistent")
    passwords = {}
    if passfile.exists():
        for line in passfile.read_text().splitlines():
            *_, name, password = line.split(":", 4)
            passwords[name] = password
    if role and role in passwords:
        user = role
    password = passwords.get(user, os.environ.get("PGPASSWORD", ""))
    return {"host": parts.hostname or "127.0.0.1", "port": parts.port or 5432,
            "database": parts.path.lstrip("/"), "user": user, "password": password}


def _write(path: Path, template: str, values: dict) -> None:
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.unlink(missing_ok=True)
    text = Template(template).substitute({k: str(v) for k, v in values.items()})
    fd = os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    partial.replace(path)
