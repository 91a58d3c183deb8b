"""PostgreSQL engine: connections with clear errors, DDL from table descriptions, Arrow COPY."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from storage_backends.sql import comment_statements, create_table
from vitalflow.tables import Table


class BackendUnavailable(RuntimeError):
    """The database cannot be reached; the message names it and says how to start it."""


def redact(url: str) -> str:
    """The URL without any password, safe for logs and errors."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", re.sub(r"password=[^&\s]+", "password=***",
                                                           url))


class PostgresStore:
    """A PostgreSQL database reached by a libpq URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    @contextmanager
    def connect(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        try:
            conn = psycopg.connect(self.url, autocommit=autocommit, connect_timeout=10)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise BackendUnavailable(
                f"PostgreSQL at {redact(self.url)} is not reachable ({reason}). Start the "
                "embedded server with `vitalflow services up`, or set VITALFLOW__DATABASE__URL "
                "to a running server.") from None
        with conn:
            yield conn

    def ensure_tables(self, conn: psycopg.Connection, tables: tuple[Table, ...]) -> None:
        for table in tables:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.layer}")
            conn.execute(create_table(table))
            for statement in comment_statements(table):
                conn.execute(statement)

    @staticmethod
    def copy_arrow(conn: psycopg.Connection, target: str, data: pa.Table) -> int:
        """Bulk-load an Arrow table with COPY (CSV rendered by Arrow in C++)."""
        if data.num_rows == 0:
            return 0
        buffer = io.BytesIO()
        pacsv.write_csv(_text_timestamps(data), buffer,
                        pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        columns = ", ".join(data.column_names)
        with conn.cursor().copy(f"COPY {target} ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getbuffer())
        return data.num_rows


def _text_timestamps(data: pa.Table) -> pa.Table:
    """Timestamps as ISO text: Arrow's CSV writer formats them some 50 times slower."""
    for index, field in enumerate(data.schema):
        if pa.types.is_timestamp(field.type):
            # %S carries the fraction of a second at the column's resolution.
            text = pc.strftime(data.column(index), format="%Y-%m-%dT%H:%M:%S" +
                               ("%z" if field.type.tz else ""))
            data = data.set_column(index, field.name, text)
    return data
