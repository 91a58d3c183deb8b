"""Runs a query for a user: policy check, the engine, row limit, timeout, small cells, the log."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.config import Settings
from vitalflow.sql.catalog import ANALYST, check_role
from vitalflow.sql.duck import DuckDBEngine, EngineError, QueryTimeout
from vitalflow.sql.policy import HIDDEN_COUNT, QueryInvalid, QueryRefused, check
from vitalflow.audit.trail import AuditTrail
from vitalflow.sql.querylog import QueryLog, QueryRecord
from vitalflow.sql.settings import ENGINES

QueryError = (QueryRefused, QueryInvalid, EngineError)


@dataclass
class QueryResult:
    table: pa.Table
    truncated: bool  # more rows exist than the role's row limit
    duration_ms: float
    engine: str
    rendered: str  # the SQL the engine ran

    @property
    def rows(self) -> list[dict]:
        return self.table.to_pylist()


class SqlService:
    """Engines are opened on first use (one per engine and role) and reused; thread-safe."""

    def __init__(self, settings: Settings, profile: str | None = None) -> None:
        self.settings = settings
        self.profile = profile or settings.storage.profile
        self._engines: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()
        self._log: QueryLog | None = None

    @property
    def log(self) -> QueryLog:
        if self._log is None:
            from vitalflow.storage import control_url

            self._log = QueryLog(control_url(self.settings))
        return self._log

    def engine(self, name: str, role: str):
        if name not in ENGINES:
            raise QueryInvalid(f"unknown engine {name!r}; engines: {', '.join(ENGINES)}")
        with self._lock:
            key = (name, role)
            if key not in self._engines:
                self.log.ensure()  # admins read meta.query_log: it must exist first
                if name == "trino":
                    from vitalflow.sql.trino_engine import TrinoEngine

                    self._engines[key] = TrinoEngine(self.settings, role, self.profile)
                else:
                    self._engines[key] = DuckDBEngine(self.settings, role, self.profile)
                self._engines[key].open()
            return self._engines[key]

    def query(self, sql: str, user: str, role: str, engine: str | None = None,
              dialect: str | None = None) -> QueryResult:
        """Run sql with the rights and limits of role; every outcome goes to the query log."""
        check_role(role)
        engine_name = engine or self.settings.sql.engine
        started, clock = datetime.now(UTC), time.perf_counter()

        def record(outcome: str, rows: int | None, message: str | None) -> None:
            self.log.write(QueryRecord(started, user, role, engine_name, self.profile, sql, rows,
                                       (time.perf_counter() - clock) * 1000, outcome, message))

        # Data access fails closed: no audit event, no query (docs/audit.md). The statement is
        # kept in meta.query_log; the trail names it by its hash.
        audit = AuditTrail(self.settings, self.log.control_url, app_user=user).action(
            "data.query", params={"engine": engine_name, "role": role, "profile": self.profile,
                                  "statement_sha256": hashlib.sha256(sql.encode()).hexdigest()})
        with audit as counts:
            result = self._query(sql, role, engine_name, dialect, record)
            counts["rows"] = result.table.num_rows
        return result

    def _query(self, sql: str, role: str, engine_name: str, dialect: str | None,
               record) -> QueryResult:
        clock = time.perf_counter()
        try:
            result = self._run(sql, role, engine_name, dialect or self.settings.sql.dialect)
        except QueryRefused as exc:
            record("refused", None, str(exc))
            raise
        except QueryTimeout as exc:
            record("timeout", None, str(exc))
            raise
        except (QueryInvalid, EngineError) as exc:
            record("error", None, str(exc))
            raise
        result.duration_ms = (time.perf_counter() - clock) * 1000
        record("ok", result.table.num_rows, "truncated at the row limit" if result.truncated
               else None)
        return result

    def _run(self, sql: str, role: str, engine_name: str, dialect: str) -> QueryResult:
        checked = check(sql, role, dialect)
        limits = self.settings.sql.roles[role]
        k = self.settings.sql.small_cell_k
        guarded = role == ANALYST and k > 0 and checked.aggregate
        if guarded and not checked.single_select:
            raise QueryRefused("refused: with the small-cell rule on, an aggregate must be one "
                               "SELECT (not UNION, INTERSECT or EXCEPT), so its counts can be "
                               "checked")
        counts = checked.count_columns() if guarded else []
        hidden = guarded and not counts
        engine = self.engine(engine_name, role)
        rendered = checked.render(engine.dialect, limits.row_limit + 1,
                                  getattr(engine, "catalogs", None), hidden_count=hidden)
        table = engine.run(rendered, checked.tables, limits.timeout_seconds)
        if guarded:
            _refuse_small_cells(table, [HIDDEN_COUNT] if hidden else counts, k)
        if hidden:
            table = table.drop_columns([HIDDEN_COUNT])
        truncated = table.num_rows > limits.row_limit
        return QueryResult(table.slice(0, limits.row_limit), truncated, 0.0, engine_name,
                           rendered)

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()


def _refuse_small_cells(table: pa.Table, columns: list[str], k: int) -> None:
    """Refuse when any count in the result is between 1 and k-1 (0 reveals no person)."""
    for name in columns:
        if name not in table.column_names:
            continue
        values = pc.cast(table.column(name), pa.float64())
        small = pc.sum(pc.and_(pc.greater(values, 0), pc.less(values, k))).as_py() or 0
        if small:
            raise QueryRefused(f"refused: {small} result row(s) count fewer than {k} "
                               f"({name}); analysts see aggregates of at least {k} only: widen "
                               "the groups")
