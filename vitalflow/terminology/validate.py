"""$validate-code entry points (CodeSystem, ValueSet) and the answer for an unusable value set."""

from __future__ import annotations

from vitalflow.terminology.fhir import FhirError, issue, parameters
from vitalflow.terminology.registry import Registry, split_canonical
from vitalflow.terminology.validate_checker import Checker
from vitalflow.terminology.validate_context import Context, PrepareError, Request, vurl
from vitalflow.terminology.validate_messages import text, version_list
from vitalflow.terminology.validate_result import validate_codeable


def prepare_error(err: PrepareError, req: Request, ctx: Context) -> dict:
    """The answer when the value set (or code system) itself cannot be used."""
    pairs: list[tuple] = [("issues", "resource",
                           {"resourceType": "OperationOutcome", "issue": [err.issue]}),
                          ("result", "valueBoolean", False),
                          ("message", "valueString", err.issue["details"]["text"])]
    c = (req.codeable.get("coding") or [{}])[0]
    if req.mode == "codeableConcept":
        pairs.append(("codeableConcept", "valueCodeableConcept", req.codeable))
    else:
        pairs.append(("system", "valueUri", c.get("system")))
        version = c.get("version")
        if not version and c.get("system"):
            cs = ctx.find_cs(c["system"], None)
            version = cs.version if cs else None
        pairs += [("version", "valueString", version), ("code", "valueCode", c.get("code"))]
    pairs.append(("x-caused-by-unknown-system", "valueCanonical", err.unknown_system))
    return parameters(*pairs)


def validate_valueset(registry: Registry, vs: dict, req: Request) -> dict:
    ctx = Context(registry, req.options)
    ctx.required_supplements |= {e.get("valueCanonical") or e.get("valueUri") for e in
                                 vs.get("extension", []) or []
                                 if e.get("url", "").endswith("valueset-supplement")}
    for ext in (vs.get("compose") or {}).get("extension", []) or []:
        if ext.get("url", "").endswith("valueset-expansion-parameter"):
            parts = {e.get("url"): e for e in ext.get("extension", []) or []}
            name = (parts.get("name") or {}).get("valueCode") or (parts.get("name") or {}).get(
                "valueString")
            value = (parts.get("value") or {}).get("valueCode")
            if name == "displayLanguage" and value and not req.options.display_languages:
                req.options.display_languages = [value]
    if not req.options.languages and vs.get("language"):
        req.options.http_languages = [vs["language"]]
    checker = Checker(ctx, vs)
    try:
        checker.prepare()
        missing = sorted(ctx.required_supplements - ctx.used_supplements)
        if missing:
            raise FhirError(422, [issue("error", "not-found", text(
                "VALUESET_SUPPLEMENT_MISSING", ",".join(missing)), tx_type="not-found",
                message_id="VALUESET_SUPPLEMENT_MISSING")])
    except PrepareError as err:
        return prepare_error(err, req, ctx)
    return validate_codeable(checker, req)


def validate_codesystem(registry: Registry, url: str | None, version: str | None,
                        req: Request) -> dict:
    """CodeSystem/$validate-code: the code system is wrapped in a value set that includes it all."""
    ctx = Context(registry, req.options)
    c = (req.codeable.get("coding") or [{}])[0]
    from_coding = not url
    url = url or c.get("system")
    system_path = {"code": "system", "coding": "Coding.system"}.get(
        req.mode, "CodeableConcept.coding[0].system")
    if not url:
        raise FhirError(400, [issue("error", "invalid", "No CodeSystem specified - provide url "
                                    "parameter or codeSystem resource")])
    url, inline = split_canonical(url)
    version = version or inline or (c.get("version") if from_coding else None)
    version = req.options.version_base(url, version)
    cs = ctx.find_cs(url, version, apply_rules=False)
    if cs is None:
        sup = ctx.supplement(url, version)
        if sup is not None:
            err = issue("error", "invalid", text("CODESYSTEM_CS_NO_SUPPLEMENT", vurl(sup)),
                        tx_type="invalid-data", message_id="CODESYSTEM_CS_NO_SUPPLEMENT",
                        expression=system_path)
            return prepare_error(PrepareError(err), req, ctx)
        if registry.get("ValueSet", url) is not None:
            err = issue("error", "invalid", text("Terminology_TX_System_ValueSet2", url),
                        tx_type="invalid-data", message_id="Terminology_TX_System_ValueSet2",
                        expression=system_path)
            return prepare_error(PrepareError(err), req, ctx)
        if version:
            known = ctx.versions(url)
            mid = "UNKNOWN_CODESYSTEM_VERSION" if known else "UNKNOWN_CODESYSTEM_VERSION_NONE"
            err = issue("error", "not-found", text(mid, url, version, version_list(known)),
                        tx_type="not-found", message_id=mid, expression=system_path)
            return prepare_error(PrepareError(err, f"{url}|{version}"), req, ctx)
        err = issue("error", "not-found", text("UNKNOWN_CODESYSTEM", url), tx_type="not-found",
                    message_id="UNKNOWN_CODESYSTEM", expression=system_path)
        return prepare_error(PrepareError(err, url), req, ctx)
    include = {"system": cs.url}
    vs = {"resourceType": "ValueSet", "status": "active",
          "url": cs.resource.get("valueSet") or f"{cs.url}/vs", "compose": {"include": [include]}}
    if cs.version:
        vs["version"] = include["version"] = cs.version
    return validate_codeable(Checker(ctx, vs, internal=True), req)


__all__ = ["FhirError", "Request", "validate_codesystem", "validate_valueset"]
