"""ClickHouse engine through clickhouse-connect: a server over HTTP(S), or chdb in-process."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from storage_backends.base import Backend, BackendUnavailable, Capabilities, Filter, redact
from storage_backends.sql import create_table, where_clause
from storage_backends.schema import Column, Table

PASSWORD_ENV = "VITALFLOW_CLICKHOUSE_PASSWORD"
# Bookkeeping columns, never returned: ReplacingMergeTree keeps the row with the highest version
# per key, and drops it from FINAL reads when that row is a tombstone.
VERSION, DELETED = "_vf_version", "_vf_deleted"
_INTERNAL = (
    # The server's clock orders writes from every client of one server, whichever host they run on.
    (f"{VERSION} UInt64 DEFAULT toUnixTimestamp64Nano(now64(9)) "
     "COMMENT 'vitalflow write version: the highest per key is the current row'"),
    f"{DELETED} UInt8 DEFAULT 0 COMMENT 'vitalflow tombstone: 1 when the key was deleted'",
)
# Where a replicated table keeps its parts' log in Keeper: one path per shard and table.
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
INSERT_BYTES = 32 << 20  # Arrow bytes per INSERT
TYPES = {"text": "String", "int": "Int64", "float": "Float64", "bool": "Bool", "date": "Date32",
         "timestamp": "DateTime64(6, 'UTC')", "json": "String", "decimal": "Decimal(18, 6)",
         "binary": "String"}

# chdb hosts one engine, on one data path, per process; every backend on that path shares its
# client (which serialises calls), and the engine lives until the process ends.
_embedded_lock = threading.Lock()
_embedded: dict[str, Client] = {}


class ClickHouseBackend(Backend):
    """ClickHouse reached by clickhouse://, clickhouses:// or chdb:/// URLs; a layer is the
    database {database_prefix}{layer}; tables are ReplacingMergeTree read with FINAL."""

    name = "ClickHouse"
    capabilities = Capabilities(transactions=False, time_travel=False, enforces_keys=False)

    def __init__(self, url: str, database_prefix: str = "") -> None:
        super().__init__(url)
        if not re.fullmatch(r"[A-Za-z0-9_]*", database_prefix):
            raise ValueError(f"database_prefix {database_prefix!r} may hold only letters, "
                             "digits and _")
        self.database_prefix = database_prefix
        self.embedded = urlsplit(url).scheme.lower() == "chdb"
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        """The clickhouse-connect client, connected on first use."""
        if self._client is None:
            self._client = _embedded_client(self.url) if self.embedded else self._connect()
        return self._client

    def close(self) -> None:
        # The shared chdb client stays open: reopening the engine costs more than keeping it.
        if self._client is not None and not self.embedded:
            self._client.close()
        self._client = None

    def database(self, table: Table) -> str:
        return f"{self.database_prefix}{table.layer}"

    def table_name(self, table: Table) -> str:
        return f"{self.database(table)}.{table.name}"

    # -- primitives ---------------------------------------------------------------------------

    def _create(self, table: Table) -> None:
        statement = create_statement(table, self.table_name(table))
        with self._errors():
            self.client.command(f"CREATE DATABASE IF NOT EXISTS {self.database(table)}")
            self.client.command(statement)
        self._refresh_comments(table)

    def _refresh_comments(self, table: Table) -> None:
        """A table created by an earlier version keeps its old comments under CREATE … IF NOT
        EXISTS: rewrite those that differ from the description (a metadata-only ALTER)."""
        held = self._comments(table)
        changes = [f"COMMENT COLUMN {c.name} {_literal(c.comment)}" for c in table.columns
                   if c.name in held and held[c.name] != c.comment]
        if held.get("") != table.comment:
            changes.append(f"MODIFY COMMENT {_literal(table.comment)}")
        if changes:
            with self._errors():
                self.client.command(f"ALTER TABLE {self.table_name(table)} {', '.join(changes)}")

    def _append(self, table: Table, data: pa.Table) -> None:
        # Without enforced keys an append is an insert like any other: a repeated key simply
        # becomes its newer version.
        self._insert(table, data)

    def _upsert(self, table: Table, data: pa.Table) -> None:
        self._insert(table, data)

    def _delete(self, table: Table, keys: pa.Table) -> None:
        # Tombstones: an insert as cheap as any write, exact under FINAL, and a key deleted then
        # written again simply has a newer version. A lightweight DELETE would instead mutate
        # every part holding the keys, and wait for it.
        self._insert(table, keys.append_column(
            DELETED, pa.repeat(pa.scalar(1, pa.uint8()), keys.num_rows)))

    def _read(self, table: Table, columns: list[str], where: list[Filter],
              snapshot: int | None) -> pa.Table:
        params: dict[str, Any] = {}

        def bind(column: str, value: Any, array: bool = False) -> str:
            name = f"p{len(params)}"
            params[name] = [_param(v) for v in value] if array else _param(value)
            kind = TYPES[table.column(column).type]
            return f"{{{name}:{f'Array({kind})' if array else kind}}}"

        def in_list(column: str, values: list, negated: bool) -> str:
            values = [v for v in values if v is not None]  # null equals nothing, not even null
            if not values:
                return "true" if negated else "false"
            # A subquery builds a hash set once. `IN {array}` itself does that for small arrays
            # only: from about 62,000 values (chdb 26.9) each row scans the whole array.
            return (f"{column} {'NOT ' if negated else ''}IN "
                    f"(SELECT arrayJoin({bind(column, values, array=True)}))")

        # FINAL merges the versions of each key at read time, so results are exact before the
        # background merges catch up; filters on other columns apply after it.
        query = (f"SELECT {', '.join(columns)} FROM {self.table_name(table)} FINAL"
                 f"{where_clause(where, None, in_list, column_placeholder=bind)}")
        with self._errors():
            return self.client.query_arrow(query, parameters=params)

    def _count(self, table: Table) -> int:
        with self._errors():
            return int(self.client.command(f"SELECT count() FROM {self.table_name(table)} FINAL"))

    def _exists(self, table: Table) -> bool:
        with self._errors():
            return bool(int(self.client.command(f"EXISTS TABLE {self.table_name(table)}")))

    def _storage_bytes(self, table: Table) -> int:
        with self._errors():
            return int(self.client.command(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = "
                "{database:String} AND table = {table:String}",
                parameters={"database": self.database(table), "table": table.name}))

    def _comments(self, table: Table) -> dict[str, str]:
        where = {"database": self.database(table), "table": table.name}
        with self._errors():
            found = self.client.query(
                "SELECT '', comment FROM system.tables WHERE database = {database:String} AND "
                "name = {table:String} UNION ALL SELECT name, comment FROM system.columns WHERE "
                "database = {database:String} AND table = {table:String}", parameters=where)
        return {name: comment for name, comment in found.result_rows
                if name not in (VERSION, DELETED)}

    def _drop(self, table: Table) -> None:
        with self._errors():
            self.client.command(f"DROP TABLE IF EXISTS {self.table_name(table)} SYNC")

    # -- connection ---------------------------------------------------------------------------

    def _insert(self, table: Table, data: pa.Table) -> None:
        # ClickHouse parses an Arrow payload whole and writes it as one block: 1M observations
        # in one piece cost ~1 GB more memory than in ~32 MiB pieces, and are no faster. A write
        # cut short leaves some pieces in; repeating it is harmless, as repeated keys collapse.
        rows = max(1, data.num_rows * INSERT_BYTES // max(data.nbytes, 1))
        with self._errors():
            for start in range(0, data.num_rows, rows):
                self.client.insert_arrow(table.name, data.slice(start, rows),
                                         database=self.database(table))

    def _connect(self) -> Client:
        parts = urlsplit(self.url)
        options: dict[str, Any] = {
            # No session: backends share nothing between calls, and a session would refuse the
            # concurrent queries of several threads.
            "autogenerate_session_id": False,
            "interface": "https" if parts.scheme.lower() == "clickhouses" else "http"}
        if not parts.password and os.environ.get(PASSWORD_ENV):
            options["password"] = os.environ[PASSWORD_ENV]
        with self._errors():
            return clickhouse_connect.get_client(dsn=self.url, **options)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            parts = urlsplit(self.url)
            port = parts.port or (8443 if parts.scheme.lower() == "clickhouses" else 8123)
            found = re.search(r"\[Errno -?\d+\][^\"')]*|timed out|Name or service not known",
                              str(exc))
            reason = found.group(0).strip() if found else redact(str(exc))[:200]
            raise BackendUnavailable(
                f"ClickHouse at {parts.hostname}:{port} is not reachable ({reason}). Start it, "
                "or use the embedded engine with VITALFLOW__CLICKHOUSE__URL=chdb:///path"
            ) from None


def create_statement(table: Table, name: str, cluster: str | None = None) -> str:
    """CREATE TABLE for the description. With cluster: the same table ON CLUSTER, as a
    ReplicatedReplacingMergeTree whose Keeper path and replica name come from each server's
    macros {shard} and {replica} (infra/clickhouse/)."""
    keys = ", ".join(table.primary_key)
    settings = ("\nSETTINGS allow_nullable_key = 1"
                if any(table.column(k).nullable for k in table.primary_key) else "")
    engine = (f"ReplicatedReplacingMergeTree('{REPLICA_PATH}', '{{replica}}', {VERSION}, "
              f"{DELETED})" if cluster else f"ReplacingMergeTree({VERSION}, {DELETED})")
    return create_table(
        table, f"{name} ON CLUSTER {cluster}" if cluster else name, type_of=_type,
        primary_key=False, column_suffix=lambda c: f" COMMENT {_literal(c.comment)}",
        extra_columns=_INTERNAL, suffix=(f"\nENGINE = {engine}\nORDER BY ({keys}){settings}"
                                         f"\nCOMMENT {_literal(table.comment)}"))


def _embedded_client(url: str) -> Client:
    parts = urlsplit(url)
    location = parts.netloc.rpartition("@")[2] if parts.netloc else parts.path
    path = (":memory:" if location in ("", "memory", ":memory:")
            else os.path.realpath(location))
    with _embedded_lock:
        if path not in _embedded:
            if _embedded:
                (open_path,) = _embedded
                raise ValueError(
                    f"chdb runs one engine per process and it is open on {open_path}, so "
                    f"{redact(url)} cannot be opened too; use one chdb path per process (or a "
                    "ClickHouse server: clickhouse://host:8123)")
            _embedded[path] = clickhouse_connect.get_client(dsn=url)
        return _embedded[path]


def _type(column: Column) -> str:
    return f"Nullable({TYPES[column.type]})" if column.nullable else TYPES[column.type]


def _literal(text: str) -> str:
    """A ClickHouse string literal: backslash is an escape character there, unlike in SQL."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _param(value: Any) -> Any:
    """A value as clickhouse-connect should bind it: it drops microseconds from datetimes and
    shifts them to the server's zone, and would send Decimal('1E+3') as written."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, Decimal):
        return Decimal(format(value, "f"))
    return value
