"""A circuit breaker: after N consecutive failures stop calling for a while, then probe once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    """closed -> (failures >= threshold) -> open -> (reset elapsed) -> half-open -> closed/open."""

    def __init__(self, failure_threshold: int = 5, reset_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_seconds:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one probe at a time."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half-open" and not self._probing:
                self._probing = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._probing = 0, None, False
            self.last_error = None

    def record_failure(self, reason: str = "") -> None:
        with self._lock:
            self._failures += 1
            self.last_error = reason or self.last_error
            if self._probing or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._probing = False
