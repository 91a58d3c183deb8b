"""Fixtures: the local terminology server, and a fault-injecting wrapper around it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from starlette.responses import Response

from vitalflow.terminology.embedded import EmbeddedServer
from vitalflow.terminology.server import create_app
from vitalflow.terminology.settings import TerminologySettings

SHARED = Path(__file__).parents[2].parent / "shared"


class Faults:
    """ASGI wrapper: mode decides what the next requests get instead of the real answer."""

    def __init__(self, app):
        self.app = app
        self.mode = "ok"
        self.times = None  # how many requests get the fault; None = all
        self.hits = 0
        self.retry_after = "1"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == "/metadata" or self.mode == "ok" or (
                self.times is not None and self.times <= 0):
            return await self.app(scope, receive, send)
        self.hits += 1
        if self.times is not None:
            self.times -= 1
        mode = self.mode
        if mode == "slow":
            # Hang until the test puts the server right (or a minute passes): the client's
            # timeout, however generous, always runs out first.
            deadline = asyncio.get_running_loop().time() + 60
            while self.mode == "slow" and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            return await self.app(scope, receive, send)
        responses = {
            "500": Response("boom", 500, media_type="text/plain"),
            "429": Response('{"resourceType":"OperationOutcome"}', 429,
                            headers={"Retry-After": self.retry_after},
                            media_type="application/fhir+json"),
            "malformed": Response('{"resourceType": "Parameters", "parameter": [',
                                  200, media_type="application/fhir+json"),
            "html": Response("<html>proxy login</html>", 200, media_type="text/html"),
            "huge": Response(b'{"resourceType":"Parameters","x":"' + b"a" * 3_000_000 + b'"}',
                             200, media_type="application/fhir+json"),
        }
        await responses[mode](scope, receive, send)


@pytest.fixture(scope="module")
def local_server():
    with EmbeddedServer() as url:
        yield url


@pytest.fixture
def faulty_server():
    faults = Faults(create_app())
    server = EmbeddedServer(app=faults)
    url = server.start()
    faults.base_url = url
    yield faults
    server.stop()


@pytest.fixture
def fast_settings() -> TerminologySettings:
    # Timeouts generous enough for a loaded machine; only the hanging server runs them out.
    return TerminologySettings(timeout_seconds=10.0, connect_timeout_seconds=10.0, retries=2,
                               backoff_seconds=0.01, max_backoff_seconds=2.0,
                               breaker_failures=50, breaker_reset_seconds=0.0,
                               max_response_bytes=1_000_000)
