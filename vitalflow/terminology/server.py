"""FastAPI terminology server over a Registry: $validate-code, $lookup, $translate, $expand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from vitalflow.monitoring.exposition import instrument
from vitalflow.terminology import operations
from vitalflow.terminology.fhir import FhirError, issue, outcome
from vitalflow.terminology.registry import Registry

FHIR_JSON = "application/fhir+json"
CONTENT_DIR = Path(__file__).resolve().parents[2] / "config" / "terminology"
_OPS = ("validate-code", "lookup", "translate", "expand")


def _response(body: dict, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


def _query_params(request: Request) -> dict:
    """GET query string as a Parameters resource (coding given as system|code)."""
    params = []
    for name, value in request.query_params.multi_items():
        if name in ("coding", "sourceCoding", "targetCoding") and "|" in value:
            system, code = value.rsplit("|", 1)
            params.append({"name": name, "valueCoding": {"system": system, "code": code}})
        elif value in ("true", "false"):
            params.append({"name": name, "valueBoolean": value == "true"})
        else:
            params.append({"name": name, "valueString": value})
    return {"resourceType": "Parameters", "parameter": params}


async def _body_params(request: Request) -> dict:
    raw = await request.body()
    if not raw.strip():
        return _query_params(request)
    try:
        body = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FhirError(400, [issue("error", "structure", f"Body is not valid JSON: {exc}")])
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, [issue("error", "structure", "Body must be a Parameters resource")])
    query = _query_params(request)
    body.setdefault("parameter", []).extend(query["parameter"])
    return body


def capability_statement(base: str) -> dict:
    ops = [{"name": op, "definition": f"http://hl7.org/fhir/OperationDefinition/{kind}-{op}"}
           for kind, op in (("CodeSystem", "validate-code"), ("CodeSystem", "lookup"),
                            ("ValueSet", "validate-code"), ("ValueSet", "expand"),
                            ("ConceptMap", "translate"))]
    return {"resourceType": "CapabilityStatement", "status": "active",
            "date": datetime.now(UTC).date().isoformat(), "kind": "instance",
            "software": {"name": "vitalflow terminology"},
            "implementation": {"description": "vitalflow local terminology server", "url": base},
            "fhirVersion": "4.0.1", "format": ["application/fhir+json", "json"],
            "instantiates": ["http://hl7.org/fhir/CapabilityStatement/terminology-server"],
            "rest": [{"mode": "server", "resource": [
                {"type": t, "interaction": [{"code": "read"}, {"code": "search-type"}]}
                for t in ("CodeSystem", "ValueSet", "ConceptMap")], "operation": ops}]}


def terminology_capabilities(registry: Registry) -> dict:
    systems = {}
    for cs in registry.all("CodeSystem"):
        systems.setdefault(cs["url"], []).append({"code": cs.get("version")} if cs.get(
            "version") else {})
    return {"resourceType": "TerminologyCapabilities", "status": "active",
            "date": datetime.now(UTC).date().isoformat(), "kind": "instance",
            "codeSystem": [{"uri": u, "version": [v for v in vs if v]} for u, vs in
                           sorted(systems.items())],
            "expansion": {"hierarchical": False, "paging": True},
            "validateCode": {"translations": False}, "translation": {"needsMap": False}}


def create_app(registry: Registry | None = None, content_dir: Path | None = None) -> FastAPI:
    """The server app; by default it serves the resources in config/terminology/."""
    reg = registry or Registry.from_directory(content_dir or CONTENT_DIR)
    app = FastAPI(title="vitalflow terminology", docs_url=None, redoc_url=None)
    app.state.registry = reg
    instrument(app, "terminology")  # /metrics (docs/monitoring.md)

    @app.exception_handler(FhirError)
    async def _fhir_error(_: Request, exc: FhirError) -> JSONResponse:
        return _response(exc.resource(), exc.status)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _response(outcome(issue("error", "exception",
                                       f"Internal error: {type(exc).__name__}: {exc}")), 500)

    @app.get("/metadata")
    async def metadata(request: Request, mode: str | None = None) -> JSONResponse:
        if mode == "terminology":
            return _response(terminology_capabilities(reg))
        return _response(capability_statement(str(request.base_url).rstrip("/")))

    def handle(kind: str, op: str, rid: str | None, params: dict,
               language: str | None) -> dict:
        url = _url_of(reg, kind, rid)
        if op == "validate-code" and kind in ("CodeSystem", "ValueSet"):
            return operations.validate_code(reg, params, on=kind, resource_id=url,
                                            accept_language=language)
        if (kind, op) == ("CodeSystem", "lookup"):
            return operations.lookup(reg, params)
        if (kind, op) == ("ConceptMap", "translate"):
            return operations.translate(reg, params, url)
        if (kind, op) == ("ValueSet", "expand"):
            return operations.expand(reg, params, url)
        raise FhirError(404, [issue("error", "not-supported",
                                    f"Operation ${op} is not supported on {kind}")])

    async def dispatch(request: Request, kind: str, op: str, rid: str | None) -> JSONResponse:
        params = await _body_params(request) if request.method == "POST" else \
            _query_params(request)
        return _response(handle(kind, op, rid, params, request.headers.get("accept-language")))

    @app.post("/")
    async def batch(request: Request) -> JSONResponse:
        try:
            bundle = json.loads((await request.body()).decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FhirError(400, [issue("error", "structure", f"Body is not valid JSON: {exc}")])
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or \
                bundle.get("type") != "batch":
            raise FhirError(400, [issue("error", "structure", "POST / takes a batch Bundle")])
        entries = []
        for entry in bundle.get("entry", []) or []:
            entries.append(_batch_entry(handle, entry, request.headers.get("accept-language")))
        return _response({"resourceType": "Bundle", "type": "batch-response", "entry": entries})

    for verb in ("GET", "POST"):
        app.add_api_route("/{kind}/${op}", _type_route(dispatch), methods=[verb])
        app.add_api_route("/{kind}/{rid}/${op}", _instance_route(dispatch), methods=[verb])

    @app.get("/{kind}/{rid}")
    async def read(kind: str, rid: str) -> JSONResponse:
        for r in reg.all(kind) if kind in ("CodeSystem", "ValueSet", "ConceptMap") else []:
            if r.get("id") == rid:
                return _response(r)
        raise FhirError(404, [issue("error", "not-found", f"{kind}/{rid} is not known")])

    return app


def _batch_entry(handle, entry: dict, language: str | None) -> dict:
    req = entry.get("request") or {}
    path = str(req.get("url", "")).split("?")[0].strip("/").split("/")
    try:
        if len(path) not in (2, 3) or not path[-1].startswith("$"):
            raise FhirError(400, [issue("error", "not-supported",
                                        f"Unsupported batch entry {req.get('url')!r}")])
        body = handle(path[0], path[-1][1:], path[1] if len(path) == 3 else None,
                      entry.get("resource") or {}, language)
        return {"resource": body, "response": {"status": "200 OK"}}
    except FhirError as exc:
        return {"resource": exc.resource(), "response": {"status": str(exc.status)}}


def _type_route(dispatch):
    async def route(request: Request, kind: str, op: str) -> JSONResponse:
        return await dispatch(request, kind, op, None)
    return route


def _instance_route(dispatch):
    async def route(request: Request, kind: str, rid: str, op: str) -> JSONResponse:
        return await dispatch(request, kind, op, rid)
    return route


def _url_of(reg: Registry, kind: str, rid: str | None) -> str | None:
    if rid is None:
        return None
    for r in reg.all(kind):
        if r.get("id") == rid:
            return r["url"]
    raise FhirError(404, [issue("error", "not-found", f"{kind}/{rid} is not known")])


__all__ = ["CONTENT_DIR", "_OPS", "create_app"]
