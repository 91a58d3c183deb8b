"""`/metrics` for long-running processes: request counts and latency of a FastAPI app."""

from __future__ import annotations

import functools
import time


@functools.cache
def _metrics():
    """The request metrics, registered once per process in the default registry."""
    from prometheus_client import Counter, Histogram

    return (Counter("vitalflow_http_requests", "HTTP requests served, by service, operation "
                    "and status class", ("service", "operation", "status")),
            Histogram("vitalflow_http_request_duration_seconds", "Time to answer a request",
                      ("service", "operation"),
                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)))


def _operation(scope: dict) -> str:
    """A low-cardinality name: the FHIR operation ($validate-code ...) or the route template."""
    params = scope.get("path_params") or {}
    if "op" in params:
        return f"{params.get('kind', '')}/${params['op']}"
    route = scope.get("route")
    return getattr(route, "path", "other")


def instrument(app, service: str) -> None:
    """Mount /metrics on app and count its requests; does nothing without prometheus_client."""
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    except ImportError:
        return
    from fastapi.responses import Response

    requests, latency = _metrics()

    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)

    @app.middleware("http")
    async def _count(request, call_next):
        if request.url.path == "/metrics":
            return await call_next(request)
        started = time.perf_counter()
        response = await call_next(request)
        operation = _operation(request.scope)
        requests.labels(service, operation, f"{response.status_code // 100}xx").inc()
        latency.labels(service, operation).observe(time.perf_counter() - started)
        return response


def serve_metrics(port: int):
    """/metrics of this process (process, Python and vitalflow collectors) on 127.0.0.1:port,
    from a daemon thread; for long-running processes without a web app, e.g. the Prefect
    worker. Returns (server, thread), or None for port 0 or without prometheus_client."""
    try:
        from prometheus_client import start_http_server
    except ImportError:
        return None
    return start_http_server(port, addr="127.0.0.1") if port else None
