"""Writing audit events: who, what, where and the outcome; secrets removed before they are sent."""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg

from storage_backends.base import redact

if TYPE_CHECKING:
    from vitalflow.config import Settings

log = logging.getLogger("vitalflow.audit")
# Parameter names whose values are secrets: kept as the word "removed", never as the value.
_SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|credential|passfile|api_?key"
                          r"|^key$|_key$|private)")


class AuditUnavailable(RuntimeError):
    """The audit event could not be written, so the action did not proceed."""


def scrub(value: Any, name: str = "") -> Any:
    """The value with secrets removed: secret-named fields dropped, passwords in URLs masked."""
    if _SECRET_NAME.search(name) and isinstance(value, str) and value:
        return "removed"
    if isinstance(value, dict):
        return {str(k): scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, name) for v in value]
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def where() -> dict:
    """The process an event comes from (the database adds the time and the connected role)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "os_user": os_user()}


def make_event(action: str, outcome: str = "succeeded", target: str | None = None,
               params: dict | None = None, counts: dict | None = None,
               error: BaseException | None = None, run_id: str | None = None,
               app_user: str | None = None) -> dict:
    """An event's content as the client knows it; secrets removed, empty fields left out."""
    event = {"action": action, "outcome": outcome, **where(), "run_id": run_id,
             "app_user": app_user, "target": target, "params": scrub(params or {}),
             "counts": scrub(counts or {})}
    if error is not None:
        event["error_class"] = type(error).__name__  # the class only: messages may hold data
    return {k: v for k, v in event.items() if v not in (None, {})}


def append(conn: psycopg.Connection, event: dict) -> int:
    """Write one event in the connection's transaction; returns its sequence number."""
    return conn.execute("SELECT audit.append(%s::jsonb)", (json.dumps(event),)).fetchone()[0]


class AuditTrail:
    """Writes events to the audit schema of the control database. The constructor does no I/O;
    a connection is opened on the first event and kept until close().

    Data access and privacy actions use action(): it refuses to start the action when its
    event cannot be written. record() with fail_closed=False is for events after the fact
    (the pipeline's counts): a failure is logged and the action's own data stays.
    """

    def __init__(self, settings: Settings, url: str | None = None, run_id: str | None = None,
                 app_user: str | None = None) -> None:
        self.settings = settings
        self.url = url
        self.run_id = run_id
        self.app_user = app_user
        self._conn: psycopg.Connection | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.audit.enabled

    def record(self, action: str, *, fail_closed: bool = True,
               conn: psycopg.Connection | None = None, **fields: Any) -> int | None:
        """Append one event (in conn's transaction when given). fail_closed: raise
        AuditUnavailable when it cannot be written; otherwise log it and go on."""
        if not self.enabled:
            return None
        event = make_event(action, run_id=self.run_id, app_user=self.app_user, **fields)
        try:
            return self._append(conn, event)
        except psycopg.Error as exc:
            self.close()
            message = (f"audit event {action} could not be written ({type(exc).__name__}: "
                       f"{redact(str(exc).strip().splitlines()[0] if str(exc).strip() else '')})")
            if fail_closed:
                raise AuditUnavailable(message + "; the action was not started") from None
            log.error("%s; the action's own data is kept", message)
            return None

    @contextmanager
    def action(self, action: str, target: str | None = None,
               params: dict | None = None) -> Iterator[dict]:
        """Fail closed: a 'started' event is written before the action runs (no event, no
        action); then 'succeeded' with the counts the block put in the yielded dict, or
        'failed' with the error class. The head is anchored outside the database at the end."""
        counts: dict = {}
        self.record(action, outcome="started", target=target, params=params)
        try:
            yield counts
        except BaseException as exc:
            self.record(action, fail_closed=False, outcome="failed", target=target,
                        counts=counts, error=exc)
            raise
        else:
            self.record(action, fail_closed=False, outcome="succeeded", target=target,
                        counts=counts)
        finally:
            self.anchor()
            self.close()

    def anchor(self) -> None:
        """Sign the head and write it outside the database; logged, never fatal: the events
        are in, and the next anchor covers them."""
        if not self.enabled:
            return
        from vitalflow.audit.anchors import write_anchor

        try:
            write_anchor(self._connection(), self.settings)
        except (psycopg.Error, OSError) as exc:
            self.close()
            log.error("audit anchor not written (%s); the next one covers these events",
                      type(exc).__name__)

    def _append(self, conn: psycopg.Connection | None, event: dict) -> int:
        target = conn if conn is not None else self._connection()
        try:
            with target.transaction():  # a savepoint inside the caller's transaction
                return append(target, event)
        except (psycopg.errors.UndefinedFunction, psycopg.errors.InvalidSchemaName):
            # A database no run has prepared yet (e.g. `services up` on a new server).
            from vitalflow.audit.schema import ensure_audit_schema

            with target.transaction():
                ensure_audit_schema(target)
                return append(target, event)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            url = self.url
            if url is None:
                from vitalflow.storage import control_url

                url = self.url = control_url(self.settings)
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def service_event(settings: Settings, service: str, action: str) -> None:
    """Start or stop of an embedded service, recorded when the control database is up (it is
    never started just to record this); a lost event is logged."""
    from vitalflow.storage import embedded_postgres

    url = settings.database.url
    if not url:
        server = embedded_postgres(settings)
        if not server.is_running():
            log.warning("audit event %s %s not written: the control database is down",
                        action, service)
            return
        url = server.url()
    trail = AuditTrail(settings, url)
    trail.record(action, fail_closed=False, target=service)
    trail.anchor()
    trail.close()
