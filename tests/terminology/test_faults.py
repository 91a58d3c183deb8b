"""Faults against a real local HTTP server: every code comes back pending, then completes."""

from __future__ import annotations

import pyarrow as pa
import pytest

from vitalflow.terminology.breaker import CircuitBreaker
from vitalflow.terminology.check import check_codings
from vitalflow.terminology.client import TerminologyClient
from vitalflow.terminology.embedded import EmbeddedServer, free_port
from vitalflow.terminology.server import create_app

LOINC = "http://loinc.org"
FEEDER = "http://vitalflow.example.org/fhir/CodeSystem/feeder-vitals"
CODINGS = pa.table({"system": [LOINC, LOINC, FEEDER, LOINC],
                    "code": ["8302-2", "29463-7", "WT", "8302-2"],
                    "unit": ["cm", "kg", "[lb_av]", "cm"]})
EXPECTED = {"8302-2": "valid", "29463-7": "valid", "WT": "mapped"}


def outcomes(table: pa.Table) -> dict[str, str]:
    return dict(zip(table.column("code").to_pylist(), table.column("outcome").to_pylist()))


def assert_all_pending(result: pa.Table, fragment: str) -> None:
    assert result.num_rows == 3  # one row per distinct coding: nothing dropped
    assert set(result.column("outcome").to_pylist()) == {"pending"}
    for message in result.column("message").to_pylist():
        assert fragment in message


@pytest.mark.parametrize("mode, fragment", [
    ("500", "HTTP 500"), ("slow", "timed out after 10s"), ("malformed", "malformed JSON"),
    ("html", "unexpected content type 'text/html'"), ("huge", "response too large"),
    ("429", "HTTP 429"),
])
def test_fault_gives_pending_then_completes(faulty_server, fast_settings, mode, fragment):
    faulty_server.mode = mode
    faulty_server.retry_after = "0"
    if mode == "slow":  # each attempt waits the whole timeout: one is enough
        fast_settings = fast_settings.model_copy(update={"retries": 0})
    with TerminologyClient(faulty_server.base_url, fast_settings, sleep=lambda s: None) as c:
        assert_all_pending(check_codings(CODINGS, c), fragment)
        faulty_server.mode = "ok"
        # Pending answers are not cached: the same client completes once the server is back.
        assert outcomes(check_codings(CODINGS, c)) == EXPECTED


def test_server_down_then_up(fast_settings):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with TerminologyClient(url, fast_settings, sleep=lambda s: None) as client:
        assert_all_pending(check_codings(CODINGS, client), "cannot reach server")
        with EmbeddedServer(port=port):
            assert outcomes(check_codings(CODINGS, client)) == EXPECTED


def test_retry_after_is_honoured(faulty_server, fast_settings):
    faulty_server.mode, faulty_server.times, faulty_server.retry_after = "429", 1, "1"
    waits: list[float] = []
    with TerminologyClient(faulty_server.base_url, fast_settings, sleep=waits.append) as c:
        assert outcomes(check_codings(CODINGS, c)) == EXPECTED
    assert waits[0] == 1.0


def test_retry_after_longer_than_we_wait_gives_pending(faulty_server, fast_settings):
    faulty_server.mode, faulty_server.retry_after = "429", "3600"
    with TerminologyClient(faulty_server.base_url, fast_settings, sleep=lambda s: None) as c:
        assert_all_pending(check_codings(CODINGS, c), "retry after 3600s")


def test_transient_500_is_retried(faulty_server, fast_settings):
    faulty_server.mode, faulty_server.times = "500", 1
    with TerminologyClient(faulty_server.base_url, fast_settings, sleep=lambda s: None) as c:
        assert outcomes(check_codings(CODINGS, c)) == EXPECTED
        assert c.stats["retries"] == 1


def test_circuit_breaker_stops_calling(faulty_server, fast_settings):
    faulty_server.mode = "500"
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, reset_seconds=60, clock=lambda: now[0])
    with TerminologyClient(faulty_server.base_url, fast_settings, breaker=breaker,
                           sleep=lambda s: None) as client:
        assert_all_pending(check_codings(CODINGS, client), "")
        hits = faulty_server.hits
        result = check_codings(CODINGS, client)
        assert set(result.column("outcome").to_pylist()) == {"pending"}
        assert "circuit open" in result.column("message")[0].as_py()
        assert faulty_server.hits == hits  # no request while open
        faulty_server.mode = "ok"
        now[0] += 61  # half-open: one probe, which succeeds and closes the circuit
        assert outcomes(check_codings(CODINGS, client)) == EXPECTED
        assert breaker.state == "closed"


def test_messages_do_not_leak_credentials(faulty_server, fast_settings, monkeypatch):
    monkeypatch.setenv("VITALFLOW_TERMINOLOGY_TOKEN", "s3cr3t-token")
    faulty_server.mode = "500"
    url = faulty_server.base_url.replace("http://", "http://user:pw@") + "/?api_key=abc"
    with TerminologyClient(url, fast_settings, sleep=lambda s: None) as client:
        result = check_codings(CODINGS, client)
    text = " ".join(result.column("message").to_pylist())
    for secret in ("s3cr3t-token", "pw", "abc"):
        assert secret not in text


def test_bearer_and_basic_auth_reach_the_server(fast_settings, monkeypatch):
    seen = []
    app = create_app()

    async def spy(scope, receive, send):
        seen.append(dict(scope["headers"]).get(b"authorization"))
        await app(scope, receive, send)
    with EmbeddedServer(app=spy) as url:
        monkeypatch.setenv("VITALFLOW_TERMINOLOGY_TOKEN", "tok")
        with TerminologyClient(url, fast_settings) as client:
            check_codings(CODINGS.slice(0, 1), client)
        monkeypatch.delenv("VITALFLOW_TERMINOLOGY_TOKEN")
        monkeypatch.setenv("VITALFLOW_TERMINOLOGY_USER", "u")
        monkeypatch.setenv("VITALFLOW_TERMINOLOGY_PASSWORD", "p")
        with TerminologyClient(url, fast_settings) as client:
            check_codings(CODINGS.slice(0, 1), client)
    assert b"Bearer tok" in seen
    assert b"Basic dTpw" in seen
