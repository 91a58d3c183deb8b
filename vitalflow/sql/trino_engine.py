"""Queries on the real Trino over its HTTP protocol (POST /v1/statement, then follow nextUri):
layer.table names get the catalog of the engine holding the layer."""

from __future__ import annotations

import re
import time
from datetime import date, datetime
from decimal import Decimal

import httpx
import pyarrow as pa

from vitalflow.config import Settings
from vitalflow.sql.duck import EngineError, QueryTimeout
from vitalflow.sql.trino import TrinoServer, layer_engines

_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)(?: (\S+))?")
_ARROW = {"varchar": pa.string(), "char": pa.string(), "bigint": pa.int64(),
          "integer": pa.int64(), "smallint": pa.int64(), "tinyint": pa.int64(),
          "double": pa.float64(), "real": pa.float64(), "boolean": pa.bool_(),
          "date": pa.date32()}


class TrinoEngine:
    """Runs rendered queries as the Trino user named after the role (Trino's own access rules
    allow reading refined and derived only, for every user)."""

    name = "trino"
    dialect = "trino"

    def __init__(self, settings: Settings, role: str, profile: str | None = None) -> None:
        self.settings = settings
        self.role = role
        self.profile = profile
        self.server = TrinoServer(settings, profile)
        self.catalogs = layer_engines(settings, profile)
        self._client: httpx.Client | None = None

    def open(self) -> None:
        if self._client is not None:
            return
        if self.server.pid() is None:
            raise EngineError("Trino is not running: start it with `vitalflow services up "
                              "trino` (or use --engine duckdb)")
        if "clickhouse" in self.catalogs.values() and not self.settings.clickhouse.url:
            raise EngineError("this profile keeps layers in the in-process ClickHouse (chdb), "
                              "which Trino cannot reach: use --engine duckdb")
        self._client = httpx.Client(base_url=self.server.url, timeout=60)

    def run(self, sql: str, tables: frozenset[str], timeout: float) -> pa.Table:
        self.open()
        for _ in range(_NO_NODE_RETRIES):
            try:
                return self._run_once(sql, timeout)
            except _NoNodes:
                time.sleep(1)  # its node missed heartbeats (a loaded machine): it re-registers
        return self._run_once(sql, timeout)

    def _run_once(self, sql: str, timeout: float) -> pa.Table:
        headers = {"X-Trino-User": self.role, "X-Trino-Source": "vitalflow-sql",
                   "X-Trino-Session": f"query_max_run_time={max(1, int(timeout))}s"}
        deadline = time.monotonic() + timeout + 30  # Trino cancels first; this is a backstop
        try:
            answer = self._client.post("/v1/statement", content=sql.encode(), headers=headers)
            columns, rows = None, []
            while True:
                answer.raise_for_status()
                body = answer.json()
                if "error" in body:
                    _raise(body["error"], timeout)
                columns = body.get("columns", columns)
                rows.extend(body.get("data", []))
                if "nextUri" not in body:
                    break
                if time.monotonic() > deadline:
                    self._client.delete(body["nextUri"])
                    raise QueryTimeout(f"the query ran longer than {timeout:g} s and was "
                                       "cancelled (the statement timeout of this role)")
                answer = self._client.get(body["nextUri"], headers=headers)
        except httpx.HTTPError as exc:
            raise EngineError(f"Trino at {self.server.url} did not answer: {exc}") from None
        return _to_arrow(columns or [], rows)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class _NoNodes(EngineError):
    """Trino has no worker node registered at the moment; nothing ran."""


_NO_NODE_RETRIES = 30


def _raise(error: dict, timeout: float) -> None:
    if error.get("errorName") == "NO_NODES_AVAILABLE":
        raise _NoNodes(f"Trino: {error.get('message', 'no nodes available')}")
    if error.get("errorName") == "EXCEEDED_TIME_LIMIT":
        raise QueryTimeout(f"the query ran longer than {timeout:g} s and was cancelled (the "
                           "statement timeout of this role)")
    message = error.get("message", "query failed")
    raise EngineError(f"Trino: {message}")


def _to_arrow(columns: list[dict], rows: list[list]) -> pa.Table:
    """Trino's JSON values typed as Arrow: timestamps and decimals arrive as text."""
    arrays = {}
    for index, column in enumerate(columns):
        kind = column["type"]
        base = re.match(r"[a-z]+", kind).group(0)
        values = [row[index] for row in rows]
        if base == "timestamp":
            aware = "with time zone" in kind
            arrays[column["name"]] = pa.array(
                [_timestamp(v) for v in values],
                pa.timestamp("us", tz="UTC" if aware else None))
        elif base == "decimal":
            arrays[column["name"]] = pa.array([None if v is None else Decimal(v)
                                               for v in values])
        elif base == "date":
            arrays[column["name"]] = pa.array([None if v is None else date.fromisoformat(v)
                                               for v in values], pa.date32())
        else:
            arrays[column["name"]] = pa.array(values, _ARROW.get(base))
    return pa.table(arrays)


def _timestamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    match = _TIMESTAMP.fullmatch(text)
    if not match or (match.group(2) not in (None, "UTC", "Z", "+00:00")):
        raise EngineError(f"unexpected Trino timestamp {text!r}")
    return datetime.fromisoformat(match.group(1))
