"""Where events go: always one JSON line each in the event file (owner-only); then the console or
an OpenLineage HTTP endpoint. A down or slow endpoint leaves events pending, never fails a run."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from vitalflow.lineage.settings import LineageSettings

log = logging.getLogger(__name__)


def _append(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class EventSink:
    """Keeps every event in folder/events.jsonl; with transport http also sends it, and what
    could not be sent waits in folder/pending.jsonl for `vitalflow lineage flush`. After one
    failed send the rest of the run's events go straight to pending: a slow server costs one
    timeout per run at most."""

    def __init__(self, settings: LineageSettings, folder: Path, url: str = "") -> None:
        self.settings = settings
        self.folder = folder
        self.url = url or settings.url
        self.counts = {"emitted": 0, "sent": 0, "pending": 0}
        self._reachable = True

    @property
    def events_file(self) -> Path:
        return self.folder / "events.jsonl"

    @property
    def pending_file(self) -> Path:
        return self.folder / "pending.jsonl"

    def emit(self, event: dict) -> None:
        line = json.dumps(event, separators=(",", ":"))
        _append(self.events_file, [line])
        self.counts["emitted"] += 1
        if self.settings.transport == "console":
            _console().emit(event)
        elif self.settings.transport == "http":
            if self._reachable and self.pending_file.exists():
                self._reachable = self.flush()[1] == 0  # older events first, in order
            if self._reachable and self._send(event):
                self.counts["sent"] += 1
            else:
                self._reachable = False
                _append(self.pending_file, [line])
                self.counts["pending"] += 1

    def flush(self) -> tuple[int, int]:
        """Send the pending events in order; returns (sent, still pending)."""
        events = read_events(self.pending_file)
        sent = 0
        for event in events:
            if not self._send(event):
                break
            sent += 1
        rest = events[sent:]
        tmp = self.pending_file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)  # left by an interrupted flush: its events are in pending
        if rest:
            _append(tmp, [json.dumps(e, separators=(",", ":")) for e in rest])
            tmp.replace(self.pending_file)
        else:
            self.pending_file.unlink(missing_ok=True)
        return sent, len(rest)

    def _send(self, event: dict) -> bool:
        if not self.url:
            return False
        try:
            _http(self.url, self.settings.timeout_seconds).emit(event)  # Serde takes dicts
        except Exception as exc:  # any transport failure: keep the event, tell once, go on
            log.warning("lineage: could not send to %s (%s); the event stays pending",
                        self.url, type(exc).__name__)
            return False
        return True


def _http(url: str, timeout: float):
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    return HttpTransport(HttpConfig(url=url, timeout=timeout))


def _console():
    from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport

    return ConsoleTransport(ConsoleConfig())
