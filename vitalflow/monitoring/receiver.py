"""A small Alertmanager webhook receiver: prints each notification and stores it as a JSON line."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 4 * 1024 * 1024


def describe(notification: dict) -> list[str]:
    """One line per alert: status, name, the labels that say where."""
    lines = []
    for alert in notification.get("alerts", []):
        labels = alert.get("labels", {})
        where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())
                          if k not in ("alertname", "severity"))
        summary = alert.get("annotations", {}).get("summary", "")
        lines.append(f"{alert.get('status', '?').upper():8} {labels.get('alertname', '?')} "
                     f"[{labels.get('severity', '-')}] {where} {summary}".rstrip())
    return lines


class AlertReceiver:
    """Accepts POSTs on any path; GET returns the stored notifications as a JSON list."""

    def __init__(self, store: Path, host: str = "127.0.0.1", port: int = 9099,
                 echo: Callable[[str], None] = print):
        self.store, self.host, self.port, self.echo = store, host, port, echo
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def notifications(self) -> list[dict]:
        if not self.store.exists():
            return []
        return [json.loads(line) for line in self.store.read_text().splitlines() if line]

    def _keep(self, notification: dict) -> None:
        with self._lock:
            self.store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.store.touch(mode=0o600)
            with self.store.open("a") as handle:
                handle.write(json.dumps({"received_at": datetime.now(UTC).isoformat(),
                                         **notification}) + "\n")
        for line in describe(notification):
            self.echo(line)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_BODY:
                    return self._answer(413, {"error": "body too large"})
                try:
                    notification = json.loads(self.rfile.read(length))
                except ValueError:
                    return self._answer(400, {"error": "body is not JSON"})
                if not isinstance(notification, dict):
                    return self._answer(400, {"error": "body is not a JSON object"})
                receiver._keep(notification)
                return self._answer(200, {"status": "stored"})

            def do_GET(self) -> None:
                self._answer(200, receiver.notifications())

            def _answer(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # the notifications are echoed instead
                pass

        return Handler

    def serve_forever(self) -> None:
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
