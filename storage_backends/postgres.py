"""PostgreSQL engine: psycopg 3, COPY for loads, INSERT … ON CONFLICT merges from staging tables."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from storage_backends.base import Backend, BackendUnavailable, Capabilities, Filter, redact
from storage_backends.sql import comment_statements, create_table, where_clause
from storage_backends.schema import Index, Table

BULK_LOAD_ROWS = 100_000  # appends this large into an empty table rebuild the indexes once
ANALYZE_ROWS = 10_000  # writes this large refresh the table's planner statistics


class PostgresBackend(Backend):
    """A PostgreSQL database reached by a libpq URL; layers are schemas."""

    name = "PostgreSQL"
    capabilities = Capabilities(transactions=True, time_travel=False, enforces_keys=True)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._conn: psycopg.Connection | None = None  # held open inside transaction()

    @contextmanager
    def connect(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A new connection, committed when the block ends without error. Inside transaction()
        it is the transaction's own connection, so the caller's writes (a ledger, say) commit
        or roll back with the rows."""
        if self._conn is not None and not autocommit:
            yield self._conn
            return
        try:
            conn = psycopg.connect(self.url, autocommit=autocommit, connect_timeout=10)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise BackendUnavailable(
                f"PostgreSQL at {redact(self.url)} is not reachable ({redact(reason)}). Start "
                "the embedded server with `vitalflow services up`, or set "
                "VITALFLOW__DATABASE__URL to a running server.") from None
        with conn:
            yield conn

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        if self._conn is not None:
            yield self._conn
        else:
            with self.connect() as conn:
                yield conn

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._conn is not None:  # nested: the outer transaction decides
            yield
            return
        with self.connect() as conn:
            self._conn = conn
            try:
                yield
            finally:
                self._conn = None

    def ensure_tables(self, conn: psycopg.Connection, tables: tuple[Table, ...]) -> None:
        for table in tables:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.layer}")
            conn.execute(create_table(table))
            for statement in comment_statements(table):
                conn.execute(statement)
            for index in table.indexes:
                conn.execute(_create_index(table, index))

    @staticmethod
    def copy_arrow(conn: psycopg.Connection, target: str, data: pa.Table) -> int:
        """Bulk-load an Arrow table with COPY (CSV rendered by Arrow in C++)."""
        if data.num_rows == 0:
            return 0
        buffer = io.BytesIO()
        data = _text_timestamps(data)
        with pacsv.CSVWriter(buffer, data.schema, write_options=pacsv.WriteOptions(
                include_header=False, quoting_style="needed")) as writer:
            for batch in data.to_batches():
                if batch.num_rows:  # Arrow's CSV writer emits NUL bytes for an empty chunk
                    writer.write_batch(batch)
        columns = ", ".join(data.column_names)
        with conn.cursor().copy(f"COPY {target} ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getbuffer())
        return data.num_rows

    # -- primitives ---------------------------------------------------------------------------

    def _create(self, table: Table) -> None:
        with self._connection() as conn:
            self.ensure_tables(conn, (table,))

    def _append(self, table: Table, data: pa.Table) -> None:
        with self._connection() as conn:
            if data.num_rows >= BULK_LOAD_ROWS and not conn.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {table.qualified_name})").fetchone()[0]:
                # Into an empty table, building the key and indexes once afterwards costs a
                # fraction of maintaining them row by row.
                conn.execute(f"ALTER TABLE {table.qualified_name} DROP CONSTRAINT {table.name}_pkey")
                for index in table.indexes:
                    conn.execute(f"DROP INDEX {table.layer}.{index.name(table.name)}")
                self.copy_arrow(conn, table.qualified_name, data)
                conn.execute(f"ALTER TABLE {table.qualified_name} ADD CONSTRAINT {table.name}_pkey "
                             f"PRIMARY KEY ({', '.join(table.primary_key)})")
                for index in table.indexes:
                    conn.execute(_create_index(table, index))
            else:
                self.copy_arrow(conn, table.qualified_name, data)
            self._analyze_after(conn, table, data.num_rows)

    def _upsert(self, table: Table, data: pa.Table) -> None:
        names = ", ".join(table.column_names)
        keys = ", ".join(table.primary_key)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in table.column_names
                            if c not in table.primary_key)
        action = f"UPDATE SET {updates}" if updates else "NOTHING"
        with self._connection() as conn:
            stage = self._stage(conn, table, data)
            conn.execute(f"INSERT INTO {table.qualified_name} ({names}) SELECT {names} "
                         f"FROM {stage} ON CONFLICT ({keys}) DO {action}")
            conn.execute(f"DROP TABLE {stage}")
            self._analyze_after(conn, table, data.num_rows)

    def _delete(self, table: Table, keys: pa.Table) -> None:
        match = " AND ".join(f"t.{k} = s.{k}" for k in table.primary_key)
        with self._connection() as conn:
            stage = self._stage(conn, table, keys)
            conn.execute(f"DELETE FROM {table.qualified_name} t USING {stage} s WHERE {match}")
            conn.execute(f"DROP TABLE {stage}")

    def _read(self, table: Table, columns: list[str], where: list[Filter],
              snapshot: int | None) -> pa.Table:
        params: list = []

        def bind(value) -> str:
            params.append(value)
            return "%s"

        def in_list(column: str, values: list, negated: bool) -> str:
            return f"{'NOT ' if negated else ''}{column} = ANY({bind(values)})"

        selected = ", ".join(_as_text(table, c) for c in columns)
        query = (f"SELECT {selected} FROM {table.qualified_name}"
                 f"{where_clause(where, bind, in_list)}")
        buffer = io.BytesIO()
        with self._connection() as conn, conn.cursor() as cursor:
            with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)", params) as copy:
                for block in copy:
                    buffer.write(block)
        schema = pa.schema([table.arrow_schema.field(c) for c in columns])
        if not buffer.getbuffer().nbytes:
            return schema.empty_table()
        buffer.seek(0)
        return pacsv.read_csv(
            buffer, read_options=pacsv.ReadOptions(column_names=columns),
            convert_options=pacsv.ConvertOptions(
                column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False,
                true_values=["t"], false_values=["f"]))

    def _count(self, table: Table) -> int:
        with self._connection() as conn:
            return conn.execute(f"SELECT count(*) FROM {table.qualified_name}").fetchone()[0]

    def _exists(self, table: Table) -> bool:
        with self._connection() as conn:
            return conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                (table.qualified_name,)).fetchone()[0]

    def _storage_bytes(self, table: Table) -> int:
        with self._connection() as conn:
            return conn.execute("SELECT pg_total_relation_size(%s::regclass)",
                                (table.qualified_name,)).fetchone()[0]

    def _comments(self, table: Table) -> dict[str, str]:
        with self._connection() as conn:
            return postgres_comments(conn, table.qualified_name)

    def _drop(self, table: Table) -> None:
        with self._connection() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table.qualified_name}")

    @staticmethod
    def _analyze_after(conn: psycopg.Connection, table: Table, rows: int) -> None:
        """Fresh statistics after a large write: the planner otherwise keeps the plans of a
        small table (sequential scans) for the per-key reads that follow."""
        if rows >= ANALYZE_ROWS:
            conn.execute(f"ANALYZE {table.qualified_name}")

    def _stage(self, conn: psycopg.Connection, table: Table, data: pa.Table) -> str:
        """A temporary table with data's columns, typed like the target's."""
        stage = f"stage_{table.layer}_{table.name}"
        conn.execute(f"CREATE TEMP TABLE {stage} AS SELECT {', '.join(data.column_names)} "
                     f"FROM {table.qualified_name} WITH NO DATA")
        self.copy_arrow(conn, stage, data)
        return stage


def _create_index(table: Table, index: Index) -> str:
    return (f"CREATE INDEX IF NOT EXISTS {index.name(table.name)} ON {table.qualified_name} "
            f"USING {index.method} ({', '.join(index.columns)})")


def postgres_comments(conn: psycopg.Connection, qualified_name: str) -> dict[str, str]:
    """What psql's \\d+ shows: '' -> the table's comment, column -> its comment ('' if none)."""
    found = conn.execute("SELECT to_regclass(%s)::oid", (qualified_name,)).fetchone()[0]
    if found is None:
        return {}
    rows = conn.execute(
        "SELECT '', obj_description(%s, 'pg_class') UNION ALL "
        "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
        "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped", (found, found)).fetchall()
    return {name: comment or "" for name, comment in rows}


def _as_text(table: Table, column: str) -> str:
    """Timestamps as ISO text in UTC, which Arrow's CSV reader parses exactly."""
    if table.column(column).type == "timestamp":
        return (f"to_char({column} AT TIME ZONE 'UTC', "
                f"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS {column}")
    return column


def _text_timestamps(data: pa.Table) -> pa.Table:
    """Timestamps as ISO text: Arrow's CSV writer, and strftime on a zoned type, format them
    some 20 to 50 times slower than a cast of the same instants without a zone."""
    for index, field in enumerate(data.schema):
        if pa.types.is_timestamp(field.type):
            # The naive cast prints the instant as stored (UTC for a zoned type) with the
            # fraction at the column's resolution; '+00' says it is UTC.
            text = data.column(index).cast(pa.timestamp(field.type.unit)).cast(pa.string())
            if field.type.tz:
                text = pc.binary_join_element_wise(text, "+00", "")
            data = data.set_column(index, field.name, text)
    return data
