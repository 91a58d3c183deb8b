"""HTTP client for FHIR R4 terminology servers: caching, batching, retries, circuit breaker."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from vitalflow.terminology.breaker import CircuitBreaker
from vitalflow.terminology.cache import PersistentCache, cache_key
from vitalflow.terminology.fhir import outcome_text, parameters
from vitalflow.terminology.settings import TerminologySettings

log = logging.getLogger(__name__)

_PATHS = {"cs-validate-code": "CodeSystem/$validate-code",
          "vs-validate-code": "ValueSet/$validate-code", "lookup": "CodeSystem/$lookup",
          "translate": "ConceptMap/$translate", "expand": "ValueSet/$expand"}


class TerminologyUnavailable(Exception):
    """The server could not answer now (down, slow, 5xx, 429, garbage): retry in a later run."""


class TerminologyError(Exception):
    """The server answered definitively with an error (an OperationOutcome, HTTP 4xx)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def redact_url(url: str) -> str:
    """URL without user:password and without its query string (which may carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class Call:
    """One terminology question; equal calls are asked once (and cached)."""

    operation: str  # one of _PATHS
    system: str | None = None
    code: str | None = None
    version: str | None = None
    url: str | None = None  # the ValueSet or ConceptMap
    target: str | None = None  # translate: target system

    @property
    def key(self) -> str:
        return cache_key(self.operation, system=self.system, code=self.code,
                         version=self.version, url=self.url, target=self.target)

    @property
    def path(self) -> str:
        return _PATHS[self.operation]

    def describe(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def parameters(self) -> dict:
        op = self.operation
        if op == "translate":
            return parameters(("url", "valueUri", self.url),
                              ("sourceSystem", "valueUri", self.system),
                              ("sourceCode", "valueCode", self.code),
                              ("targetSystem", "valueUri", self.target))
        if op == "expand":
            return parameters(("url", "valueUri", self.url))
        if op == "vs-validate-code":
            return parameters(("url", "valueUri", self.url), ("system", "valueUri", self.system),
                              ("code", "valueCode", self.code),
                              ("systemVersion", "valueString", self.version))
        return parameters(("url" if op == "cs-validate-code" else "system", "valueUri",
                           self.system), ("code", "valueCode", self.code),
                          ("version", "valueString", self.version))


class TerminologyClient:
    """Asks each distinct Call once: memory cache, then database cache, then the server."""

    def __init__(self, base_url: str, settings: TerminologySettings | None = None, *,
                 cache: PersistentCache | None = None, breaker: CircuitBreaker | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.settings = s = settings or TerminologySettings()
        self.base_url = base_url.rstrip("/")
        self.cache = cache
        self.breaker = breaker or CircuitBreaker(s.breaker_failures, s.breaker_reset_seconds)
        self._sleep = sleep
        self._memory: dict[str, dict] = {}
        self._batch_ok: bool | None = None if s.batch else False
        auth = s.auth()
        headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
        if isinstance(auth, str):
            headers["Authorization"] = f"Bearer {auth}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, transport=transport,
            auth=httpx.BasicAuth(*auth) if isinstance(auth, tuple) else None,
            timeout=httpx.Timeout(s.timeout_seconds, connect=s.connect_timeout_seconds))
        self.stats = {"requests": 0, "batches": 0, "memory_hits": 0, "database_hits": 0,
                      "retries": 0, "failures": 0}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TerminologyClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public -------------------------------------------------------------------------------
    def call(self, call: Call) -> dict:
        result = self.call_many([call])[call]
        if isinstance(result, Exception):
            raise result
        return result

    def call_many(self, calls: Iterable[Call]) -> dict[Call, dict | Exception]:
        """Answers (Parameters) or exceptions (TerminologyUnavailable/Error) per distinct call."""
        todo = list(dict.fromkeys(calls))
        out: dict[Call, dict | Exception] = {}
        for c in todo:
            if c.key in self._memory:
                out[c] = self._memory[c.key]
                self.stats["memory_hits"] += 1
        missing = [c for c in todo if c not in out]
        if missing and self.cache is not None:
            try:
                found = self.cache.get_many([c.key for c in missing])
            except Exception as exc:  # noqa: BLE001 - a cache outage must not stop validation
                log.warning("terminology cache unavailable: %s", type(exc).__name__)
                found = {}
            for c in missing:
                if c.key in found:
                    out[c] = self._memory[c.key] = found[c.key]
                    self.stats["database_hits"] += 1
        missing = [c for c in todo if c not in out]
        size = self.settings.batch_size
        for start in range(0, len(missing), size):
            chunk = missing[start:start + size]
            answers = self._ask(chunk)
            fresh = []
            for c in chunk:
                answer = answers[c]
                out[c] = answer
                if isinstance(answer, dict):
                    self._memory[c.key] = answer
                    fresh.append((c.key, c.operation, c.describe(), answer))
            if fresh and self.cache is not None:
                try:
                    self.cache.put_many(fresh)
                except Exception as exc:  # noqa: BLE001
                    log.warning("terminology cache not written: %s", type(exc).__name__)
        return out

    # -- transport ----------------------------------------------------------------------------
    def _ask(self, calls: list[Call]) -> dict[Call, dict | Exception]:
        if len(calls) > 1 and self._batch_ok is not False:
            try:
                answers = self._batch(calls)
            except TerminologyUnavailable as exc:
                return {c: exc for c in calls}
            if answers is not None:
                return answers
        out: dict[Call, dict | Exception] = {}
        for c in calls:
            try:
                out[c] = self._single(c)
            except (TerminologyUnavailable, TerminologyError) as exc:
                out[c] = exc
        return out

    def _single(self, call: Call) -> dict:
        status, body = self._post(call.path, call.parameters())
        return _answer(status, body, call)

    def _batch(self, calls: list[Call]) -> dict[Call, dict | Exception] | None:
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "POST", "url": c.path}, "resource": c.parameters()}
            for c in calls]}
        status, body = self._post("", bundle)
        entries = body.get("entry") if isinstance(body, dict) else None
        if status >= 400 or body.get("type") != "batch-response" or \
                not isinstance(entries, list) or len(entries) != len(calls):
            # The server does not do batches: ask one by one from now on.
            self._batch_ok = False
            log.info("terminology server at %s does not support batch; asking singly",
                     redact_url(self.base_url))
            return None
        self._batch_ok = True
        self.stats["batches"] += 1
        out: dict[Call, dict | Exception] = {}
        for c, entry in zip(calls, entries):
            code = str((entry.get("response") or {}).get("status", "500")).split()[0]
            entry_status = int(code) if code.isdigit() else 500
            try:
                out[c] = _answer(entry_status, entry.get("resource") or {}, c)
            except (TerminologyUnavailable, TerminologyError) as exc:
                out[c] = exc
        return out

    def _post(self, path: str, body: dict) -> tuple[int, dict]:
        s = self.settings
        where = redact_url(f"{self.base_url}/{path}")
        for attempt in range(s.retries + 1):
            if not self.breaker.allow():
                raise TerminologyUnavailable(
                    f"terminology server {redact_url(self.base_url)} unavailable (circuit open "
                    f"after repeated failures; last: {self.breaker.last_error or 'unknown'})")
            reason, wait = self._attempt(path, body, attempt)
            if isinstance(reason, tuple):
                self.breaker.record_success()
                return reason
            self.stats["failures"] += 1
            self.breaker.record_failure(reason)
            if wait is None or attempt == s.retries:
                break
            if wait > s.max_backoff_seconds:
                reason += f" (asked to retry after {wait:.0f}s, more than the "
                reason += f"{s.max_backoff_seconds:.0f}s we wait)"
                break
            self.stats["retries"] += 1
            log.info("terminology %s: %s; retry %d in %.2fs", where, reason, attempt + 1, wait)
            self._sleep(wait)
        raise TerminologyUnavailable(f"terminology server {where}: {reason}")

    def _backoff(self, attempt: int) -> float:
        cap = min(self.settings.max_backoff_seconds,
                  self.settings.backoff_seconds * (2 ** attempt))
        return random.uniform(0, cap)  # full jitter spreads retries of many clients

    def _attempt(self, path: str, body: dict, attempt: int):
        """((status, json), None) on an answer; (reason, wait or None) on a failure."""
        s = self.settings
        self.stats["requests"] += 1
        try:
            with self._http.stream("POST", f"/{path}" if path else "/",
                                   content=json.dumps(body)) as response:
                status = response.status_code
                if status == 429 or status >= 500 or status == 408:
                    after = _retry_after(response.headers.get("retry-after"))
                    wait = after if after is not None else self._backoff(attempt)
                    return f"HTTP {status}", wait
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if "json" not in kind:
                    return f"unexpected content type '{kind or 'none'}' (HTTP {status})", \
                        self._backoff(attempt)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > s.max_response_bytes:
                    return f"response too large ({declared} bytes > {s.max_response_bytes})", None
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > s.max_response_bytes:
                        return f"response too large (> {s.max_response_bytes} bytes)", None
                    chunks.append(chunk)
        except httpx.TimeoutException:
            return f"timed out after {s.timeout_seconds:g}s", self._backoff(attempt)
        except httpx.TransportError as exc:
            return f"cannot reach server ({type(exc).__name__})", self._backoff(attempt)
        try:
            data = json.loads(b"".join(chunks).decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return f"malformed JSON in response (HTTP {status})", self._backoff(attempt)
        if not isinstance(data, dict):
            return f"response is not a FHIR resource (HTTP {status})", self._backoff(attempt)
        return (status, data), None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _answer(status: int, body: dict, call: Call) -> dict:
    if status in (401, 403):
        raise TerminologyUnavailable(f"terminology server refused access (HTTP {status}); "
                                     "check VITALFLOW_TERMINOLOGY_TOKEN or _USER/_PASSWORD")
    if status == 429 or status >= 500:
        raise TerminologyUnavailable(f"terminology server answered HTTP {status}")
    if status >= 400:
        text = outcome_text(body) if body.get("resourceType") == "OperationOutcome" else ""
        raise TerminologyError(text or f"HTTP {status} for {call.operation}", status)
    if body.get("resourceType") not in ("Parameters", "ValueSet"):
        raise TerminologyUnavailable(
            f"unexpected {body.get('resourceType') or 'body'} in answer to {call.operation}")
    return body
