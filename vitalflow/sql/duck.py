"""The embedded engine: DuckDB, read-only, with every layer of a profile under one catalog of
names (PostgreSQL attached, Iceberg scanned, ClickHouse read into Arrow, raw Parquet files)."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import duckdb
import pyarrow as pa

from storage_backends.base import redact
from storage_backends.postgres import PostgresBackend
from vitalflow.config import Settings
from vitalflow.privacy.identity import ANALYST as PG_ANALYST
from vitalflow.ingest import RAW_SCHEMA
from vitalflow.ingest.parquet import ParquetRawStore
from vitalflow.sql.catalog import ADMIN, ENTRIES, TABLES, TableEntry, readable
from vitalflow.sql.querylog import QUERY_LOG_NAME

# Extension -> the wheel that ships it; iceberg needs avro loaded first.
EXTENSIONS = {"avro": "avro", "postgres_scanner": "postgres", "iceberg": "iceberg",
              "httpfs": "httpfs"}


_DUCK_TYPES = {"string": "VARCHAR", "large_string": "VARCHAR", "int64": "BIGINT",
               "large_binary": "BLOB"}


class EngineError(RuntimeError):
    """The engine could not be set up or could not run the query (message safe to show)."""


class QueryTimeout(EngineError):
    """The query ran longer than the role's statement timeout and was cancelled."""


def extension_directory(root: Path) -> Path:
    """A private extension folder holding links to the duckdb-extension-* wheels' files, so
    DuckDB loads them by name and never downloads one."""
    version = duckdb.__version__
    platform = duckdb.connect().execute("PRAGMA platform").fetchone()[0]
    folder = root / "duckdb" / "extensions"
    target = folder / f"v{version}" / platform
    target.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for name, wheel in EXTENSIONS.items():
        spec = importlib.util.find_spec(f"duckdb_extension_{wheel}")
        if spec is None or not spec.submodule_search_locations:
            raise EngineError(f"DuckDB extension {wheel} is missing: pip install "
                              f"'vitalflow[sql]' (duckdb-extension-{wheel}=={version})")
        shipped = (Path(spec.submodule_search_locations[0]) / "extensions" / f"v{version}"
                   / f"{wheel}.duckdb_extension")
        link = target / f"{name}.duckdb_extension"
        if not link.exists():
            link.unlink(missing_ok=True)
            link.symlink_to(shipped)
    return folder


class DuckDBEngine:
    """One in-memory DuckDB per role; queries run on cursors of it (one per thread)."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, settings: Settings, role: str, profile: str | None = None) -> None:
        self.settings = settings
        self.role = role
        self.profile = profile or settings.storage.profile
        self._con: duckdb.DuckDBPyConnection | None = None
        self._layers = None
        self._lock = threading.Lock()
        self._refreshed: dict[str, float] = {}  # table -> when its snapshot was taken

    # -- set-up -------------------------------------------------------------------------------

    def open(self) -> None:
        if self._con is not None:
            return
        try:
            self._open()
        except duckdb.Error as exc:
            self.close()
            raise EngineError(f"DuckDB could not attach the layers of profile "
                              f"{self.profile}: {redact(_first_line(exc))}") from None

    def _open(self) -> None:
        from vitalflow.storage import open_layers

        self._layers = open_layers(self.settings, self.profile)
        root = self.settings.paths.root
        con = duckdb.connect(":memory:", config={
            "autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
            "extension_directory": str(extension_directory(root))})
        con.execute("SET TimeZone = 'UTC'")
        for name in EXTENSIONS:
            con.execute(f"LOAD {name}")
        allowed: list[str] = []
        attached: dict[str, str] = {}
        for entry in readable(self.role).values():
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {entry.layer}")
            holder = self._holder(entry)
            if isinstance(holder, PostgresBackend):
                url = holder.url
                if url not in attached:
                    attached[url] = f"pg{len(attached)}"
                    con.execute(f"ATTACH {_quote(self._postgres_url(url))} AS {attached[url]} "
                                "(TYPE postgres, READ_ONLY)")
                con.execute(f"CREATE VIEW {entry.name} AS SELECT * FROM "
                            f"{attached[url]}.{entry.name}")
            elif _iceberg(holder) is not None:
                allowed.append(self._iceberg_access(con, _iceberg(holder)))
            elif isinstance(holder, ParquetRawStore):
                allowed.append(str(holder.root) + "/")
        self._con = con
        for entry in readable(self.role).values():
            self._refresh(entry, force=True)
        # Defence in depth: after set-up no file, URL or database outside the layers is
        # reachable and no setting can change, whatever SQL gets through.
        con.execute("SET allowed_directories = ?", [sorted(set(allowed))])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")

    def _holder(self, entry: TableEntry):
        layers = self._layers
        if entry.name == QUERY_LOG_NAME:
            return layers.control
        if entry.layer == "raw":
            return layers.raw
        return layers.derived if entry.layer == "derived" else layers.refined

    def _postgres_url(self, url: str) -> str:
        """Analysts attach as the database's analyst role when its password is at hand (the
        embedded server's passfile): the server then refuses identity too."""
        if self.role == ADMIN:
            return url
        parts = urlsplit(url)
        passfile = parse_qs(parts.query).get("passfile", [""])[0]
        if not passfile or not Path(passfile).exists() or f":{PG_ANALYST}:" not in Path(
                passfile).read_text():
            return url
        host = parts.netloc.split("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"{PG_ANALYST}@{host}"))

    def _iceberg_access(self, con: duckdb.DuckDBPyConnection, backend) -> str:
        warehouse = backend.warehouse
        if warehouse.startswith("s3://"):
            from vitalflow.object_store import s3_options

            s3 = self.settings.s3
            options = s3_options(self.settings.paths.root, s3.endpoint or None, s3.region)
            endpoint = urlsplit(options.get("s3.endpoint", ""))
            con.execute(
                "CREATE OR REPLACE SECRET vitalflow_s3 (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, "
                "ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
                [options.get("s3.access-key-id", ""), options.get("s3.secret-access-key", ""),
                 options["s3.region"], endpoint.netloc or "s3.amazonaws.com",
                 endpoint.scheme != "http"])
        return warehouse.removeprefix("file://").rstrip("/") + "/"

    def _refresh(self, entry: TableEntry, force: bool = False) -> None:
        """Point the name at the table's current snapshot (Iceberg, ClickHouse, raw files);
        PostgreSQL views are always current."""
        ttl = self.settings.sql.catalog_ttl_seconds
        if not force and time.monotonic() - self._refreshed.get(entry.name, 0) < ttl:
            return
        holder = self._holder(entry)
        if isinstance(holder, PostgresBackend):
            return
        con = self._con
        if isinstance(holder, ParquetRawStore):
            files = sorted(str(p) for p in holder.batches_dir.glob("*.parquet"))
            empty = ", ".join(f"NULL::{_DUCK_TYPES[str(f.type)]} AS {f.name}" for f in RAW_SCHEMA)
            source = (f"SELECT * FROM read_parquet({_quote_list(files)})" if files
                      else f"SELECT {empty} LIMIT 0")  # no batch yet: the columns, no rows
            con.execute(f"CREATE OR REPLACE VIEW {entry.name} AS {source}")
        elif _iceberg(holder) is not None:
            location = _iceberg(holder).load((entry.layer, entry.table)).metadata_location
            con.execute(f"CREATE OR REPLACE VIEW {entry.name} AS SELECT * FROM "
                        f"iceberg_scan({_quote(location)})")
        else:  # ClickHouse: read through the backend (FINAL rows), held as a DuckDB table
            data = holder.read(TABLES[entry.name])
            con.register("_vf_arrow", data)
            con.execute(f"CREATE OR REPLACE TABLE {entry.name} AS FROM _vf_arrow")
            con.unregister("_vf_arrow")
        self._refreshed[entry.name] = time.monotonic()

    # -- queries ------------------------------------------------------------------------------

    def run(self, sql: str, tables: frozenset[str], timeout: float) -> pa.Table:
        """Rows of an already checked and rendered query; cancelled after timeout seconds."""
        self.open()
        with self._lock:
            for name in tables:
                self._refresh(ENTRIES[name])
        cursor = self._con.cursor()
        timer = threading.Timer(timeout, cursor.interrupt)
        timer.start()
        try:
            return cursor.execute(sql).to_arrow_table()
        except duckdb.InterruptException:
            raise QueryTimeout(f"the query ran longer than {timeout:g} s and was cancelled "
                               "(the statement timeout of this role)") from None
        except duckdb.Error as exc:
            raise EngineError(_first_line(exc)) from None
        finally:
            timer.cancel()
            cursor.close()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._layers is not None:
            self._layers.close()
            self._layers = None


def _iceberg(holder):
    """The Iceberg backend behind a layer (the raw store on Iceberg keeps its own), or None."""
    from storage_backends.iceberg import IcebergBackend

    holder = getattr(holder, "backend", holder)
    return holder if isinstance(holder, IcebergBackend) else None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_list(items: list[str]) -> str:
    return "[" + ", ".join(_quote(i) for i in items) + "]"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

