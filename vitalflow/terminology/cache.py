"""Response cache: in process, and persistently in meta.terminology_cache with a TTL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

DDL = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.terminology_cache (
    key        text PRIMARY KEY,
    operation  text NOT NULL,
    request    jsonb NOT NULL,
    response   jsonb NOT NULL,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    expires    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS terminology_cache_expires ON meta.terminology_cache (expires);
"""


def cache_key(operation: str, **fields: str | None) -> str:
    """Stable hash of an operation and its identifying inputs (system, code, version, url...)."""
    text = json.dumps([operation, sorted((k, v) for k, v in fields.items() if v is not None)],
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


Connect = Callable[[], "psycopg.Connection"]


class PersistentCache:
    """meta.terminology_cache; `connect` is a libpq URL or a callable returning a connection."""

    def __init__(self, connect: str | Connect, ttl_hours: float = 168.0):
        self._connect = (lambda: psycopg.connect(connect)) if isinstance(connect, str) \
            else connect
        self.ttl = timedelta(hours=ttl_hours)
        self._ready = False

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        with self._connect() as conn:
            if not self._ready:
                with conn.cursor() as cur:
                    cur.execute(DDL)
                conn.commit()
                self._ready = True
            yield conn

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        if not keys:
            return {}
        with self._conn() as conn, conn.cursor() as cur:
            cur.execute("SELECT key, response FROM meta.terminology_cache "
                        "WHERE key = ANY(%s) AND expires > now()", (list(keys),))
            return {k: r for k, r in cur.fetchall()}

    def put_many(self, items: list[tuple[str, str, dict, dict]]) -> None:
        """(key, operation, request descriptor, response) rows; replaces older entries."""
        if not items:
            return
        expires = datetime.now(UTC) + self.ttl
        with self._conn() as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO meta.terminology_cache (key, operation, request, response, "
                    "fetched_at, expires) VALUES (%s, %s, %s, %s, now(), %s) "
                    "ON CONFLICT (key) DO UPDATE SET response = EXCLUDED.response, "
                    "fetched_at = EXCLUDED.fetched_at, expires = EXCLUDED.expires",
                    [(k, op, Jsonb(req), Jsonb(resp), expires) for k, op, req, resp in items])
            conn.commit()

    def purge_expired(self) -> int:
        with self._conn() as conn:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM meta.terminology_cache WHERE expires <= now()")
                count = cur.rowcount
            conn.commit()
            return count
