"""The terminology operations on a Registry: Parameters in, Parameters (or FhirError) out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from vitalflow.terminology import validate
from vitalflow.terminology.fhir import FhirError, issue, parameters, params_to_multi
from vitalflow.terminology.registry import Registry, split_canonical
from vitalflow.terminology.validate_context import Options
from vitalflow.terminology.validate_displays import parse_languages
from vitalflow.terminology.valueset import ValueSetEngine, VersionRules


def _first(p: dict, *names: str):
    for n in names:
        if p.get(n):
            return p[n][0]
    return None


def _bool(value) -> bool:
    return value is True or str(value).lower() == "true"


def _error(status: int, text: str, code: str = "invalid", tx_type: str | None = None,
           message_id: str | None = None) -> FhirError:
    return FhirError(status, [issue("error", code, text, tx_type=tx_type,
                                    message_id=message_id)])


def with_request_resources(registry: Registry, p: dict) -> Registry:
    """Registry plus any tx-resource parameters (resources supplied with the request)."""
    extra = [r for r in p.get("tx-resource", []) if isinstance(r, dict)]
    return registry.overlay(extra)


def _split_system_version(values: list) -> dict[str, str]:
    out = {}
    for v in values or []:
        base, version = split_canonical(v)
        if base and version:
            out[base] = version
    return out


def _rules(p: dict) -> VersionRules:
    # default-valueset-version pins imported value sets the way system-version pins systems.
    return VersionRules(default=_split_system_version(p.get("system-version", []) + p.get(
                            "default-valueset-version", [])),
                        check=_split_system_version(p.get("check-system-version", [])),
                        force=_split_system_version(p.get("force-system-version", [])))


def _options(p: dict, accept_language: str | None) -> Options:
    display = parse_languages(_first(p, "displayLanguage"))
    for languages in (display, parse_languages(accept_language)):
        if languages and any(not lang.replace("-", "").isalnum() for lang in languages):
            raise _error(400, f"Invalid displayLanguage: '{languages[0]}'", "processing",
                         "invalid-display", "INVALID_DISPLAY_NAME")
    return Options(rules=_rules(p), display_languages=display,
                   http_languages=parse_languages(accept_language),
                   infer_system=_bool(_first(p, "inferSystem")),
                   active_only=_bool(_first(p, "activeOnly")),
                   abstract_ok=_first(p, "abstract") is None or _bool(_first(p, "abstract")),
                   display_warning=_bool(_first(p, "lenient-display-validation")),
                   membership_only=_bool(_first(p, "valueset-membership-only",
                                                "membershipOnly")),
                   supplements=[s for s in p.get("useSupplement", []) if isinstance(s, str)])


def validate_code(registry: Registry, params: dict, *, on: str, resource_id: str | None = None,
                  accept_language: str | None = None) -> dict:
    """CodeSystem/$validate-code (on='CodeSystem') or ValueSet/$validate-code (on='ValueSet')."""
    p = params_to_multi(params)
    registry = with_request_resources(registry, p)
    options = _options(p, accept_language)
    if p.get("codeableConcept"):
        mode, codeable = "codeableConcept", p["codeableConcept"][0]
    elif p.get("coding"):
        mode, codeable = "coding", {"coding": [dict(p["coding"][0])]}
    elif p.get("code"):
        coding = {"code": _first(p, "code"),
                  "system": _first(p, "url", "system") if on == "CodeSystem"
                  else _first(p, "system"),
                  "version": _first(p, "version") if on == "CodeSystem"
                  else _first(p, "systemVersion"),
                  "display": _first(p, "display")}
        mode, codeable = "code", {"coding": [{k: v for k, v in coding.items() if v}]}
    else:
        raise _error(400, "Unable to find code to validate (looked for coding | codeableConcept "
                     "| code)", "invalid")
    if mode != "code":
        # inferSystem is defined for the code parameter only; codings carry their own system.
        options.infer_system = False
    req = validate.Request(codeable=codeable, mode=mode, options=options)
    if on == "CodeSystem":
        url = _first(p, "url") or resource_id
        if url and mode != "code":
            for c in codeable.get("coding", []):
                c.setdefault("system", url)
        return validate.validate_codesystem(registry, url, _first(p, "version"), req)
    vs = _first(p, "valueSet")
    if vs is None:
        url = _first(p, "url") or resource_id
        if url is None:
            raise _error(400, "No value set supplied (url, valueSet or id)")
        version = _first(p, "valueSetVersion")
        vs = ValueSetEngine(registry, options.rules).resolve(
            url, options.version_base(split_canonical(url)[0], version) if version or
            split_canonical(url)[0] in options.rules.force or
            split_canonical(url)[0] in options.rules.default else None)
    return validate.validate_valueset(registry, vs, req)


def lookup(registry: Registry, params: dict, resource_id: str | None = None) -> dict:
    p = params_to_multi(params)
    registry = with_request_resources(registry, p)
    coding = _first(p, "coding") or {"system": _first(p, "system"), "code": _first(p, "code"),
                                     "version": _first(p, "version")}
    system, code = coding.get("system"), coding.get("code")
    if not system or not code:
        raise _error(400, "Unable to find code to look up (looked for coding | system + code)")
    # Only the supplements the request names (useSupplement) add to what a code looks like.
    wanted = {s for s in p.get("useSupplement", []) if isinstance(s, str)}
    cs = registry.codesystem(system, coding.get("version"), supplements=wanted)
    missing = sorted(s for s in wanted if cs is not None and not cs.has_supplement(s))
    if missing:
        raise _error(404, f"Required supplement not found: {','.join(missing)}", "not-found",
                     "not-found", "VALUESET_SUPPLEMENT_MISSING")
    if cs is None:
        version = coding.get("version")
        shown = f"'{system}' version '{version}'" if version else f"'{system}'"
        raise _error(404, f"A definition for CodeSystem {shown} could not be found, so the code "
                     "cannot be looked up", "not-found", "not-found", "UNKNOWN_CODESYSTEM")
    concept, _ = cs.find(code)
    if concept is None:
        raise _error(404, f"Unknown code '{code}' in the CodeSystem '{system}' version "
                     f"'{cs.version}'", "not-found", "invalid-code", "Unknown_Code_in_Version")
    wanted = set(p.get("property", []))
    everything = "*" in wanted or not wanted
    pairs: list[tuple] = [("abstract", "valueBoolean", cs.is_abstract(concept)),
                          ("code", "valueCode", concept["code"])]
    if concept.get("definition") and (everything or "definition" in wanted):
        pairs.append(("definition", "valueString", concept["definition"]))
    # Designations that came from a supplement say which one (source, used-supplement).
    source = {id(d): f"{sup['url']}|{sup['version']}" if sup.get("version") else sup["url"]
              for sup in cs.supplements for c in _walk(sup.get("concept", []))
              if c.get("code") == concept["code"] for d in c.get("designation", []) or []}
    shown = list(concept.get("designation", []) or [])
    if concept.get("display") and cs.language:
        shown.append({"language": cs.language, "use": _PREFERRED, "value": concept["display"]})
    for d in shown:
        part = []
        if d.get("language"):
            part.append({"name": "language", "valueCode": d["language"]})
        if d.get("use"):
            part.append({"name": "use", "valueCoding": d["use"]})
        if id(d) in source:
            part.append({"name": "source", "valueCanonical": source[id(d)]})
        part.append({"name": "value", "valueString": d.get("value")})
        pairs.append(("designation", "part", part))
    for used in dict.fromkeys(source.values()):
        pairs.append(("used-supplement", "valueCanonical", used))
    pairs.append(("display", "valueString", concept.get("display")))
    pairs.append(("name", "valueString", cs.resource.get("name")))

    def prop(name: str, kind: str, value, description: str | None = None) -> None:
        if everything or name in wanted:
            part = [{"name": "code", "valueCode": name}]
            if description:
                part.append({"name": "description", "valueString": description})
            part.append({"name": "value", kind: value})
            pairs.append(("property", "part", part))

    for child in cs.children.get(concept["code"], []):
        prop("child", "valueCode", child, cs.concepts.get(child, {}).get("display"))
    prop("inactive", "valueBoolean", cs.is_inactive(concept))
    for parent in cs.parents.get(concept["code"], []):
        prop("parent", "valueCode", parent, cs.concepts.get(parent, {}).get("display"))
    for pr in concept.get("property", []) or []:
        if pr.get("code") in ("parent", "child", "inactive"):
            continue
        for key, value in pr.items():
            if key.startswith("value"):
                prop(pr["code"], key, value)
    pairs.append(("system", "valueUri", cs.url))
    pairs.append(("version", "valueString", cs.version))
    return parameters(*pairs)


_PREFERRED = {"system": "http://terminology.hl7.org/CodeSystem/hl7TermMaintInfra",
              "code": "preferredForLanguage", "display": "Preferred For Language"}


def _walk(concepts: list[dict]) -> list[dict]:
    out = []
    for c in concepts or []:
        out.append(c)
        out.extend(_walk(c.get("concept", [])))
    return out


def _equivalence_to_relationship(eq: str | None) -> str | None:
    return {"equal": "equivalent", "equivalent": "equivalent", "wider": "source-is-narrower-than-target",
            "subsumes": "source-is-narrower-than-target", "narrower": "source-is-broader-than-target",
            "specializes": "source-is-broader-than-target", "relatedto": "related-to",
            "inexact": "related-to", "unmatched": "not-related-to",
            "disjoint": "not-related-to"}.get(eq or "", eq)


def _relationship_to_equivalence(rel: str | None) -> str | None:
    return {"equivalent": "equivalent", "related-to": "relatedto",
            "source-is-narrower-than-target": "wider", "source-is-broader-than-target": "narrower",
            "not-related-to": "disjoint"}.get(rel or "", rel)


def translate(registry: Registry, params: dict, resource_id: str | None = None) -> dict:
    """ConceptMap/$translate, forwards (sourceCode) or in reverse (targetCode)."""
    p = params_to_multi(params)
    registry = with_request_resources(registry, p)
    src = _first(p, "sourceCoding", "coding") or {
        "system": _first(p, "sourceSystem", "system"), "code": _first(p, "sourceCode", "code")}
    reverse = bool(_first(p, "targetCode", "targetCoding")) and not src.get("code")
    if reverse:
        src = _first(p, "targetCoding") or {"system": _first(p, "targetSystem"),
                                            "code": _first(p, "targetCode")}
    if not src.get("code"):
        raise _error(400, "Unable to find code to translate (sourceCode, sourceCoding, "
                     "targetCode)")
    target_system = None if reverse else _first(p, "targetSystem", "target")
    url = _first(p, "url", "conceptMap") or resource_id
    maps = [registry.get("ConceptMap", url, _first(p, "conceptMapVersion"))] if url else \
        registry.all("ConceptMap")
    if url and maps[0] is None:
        raise _error(404, f"A definition for the ConceptMap '{url}' could not be found",
                     "not-found", "not-found")
    matches = []
    for cm in maps:
        origin = f"{cm['url']}|{cm['version']}" if cm.get("version") else cm["url"]
        for g in cm.get("group", []) or []:
            for el in g.get("element", []) or []:
                for t in el.get("target", []) or []:
                    eq = t.get("equivalence") or _relationship_to_equivalence(
                        t.get("relationship"))
                    rel = t.get("relationship") or _equivalence_to_relationship(eq)
                    if not reverse and g.get("source") == src.get("system") and \
                            el.get("code") == src["code"] and \
                            (not target_system or g.get("target") == target_system):
                        concept = {"system": g.get("target"), "code": t.get("code")}
                        if t.get("display"):
                            concept["display"] = t["display"]
                        matches.append((concept, eq, rel, origin, None))
                    elif reverse and g.get("target") == src.get("system") and \
                            t.get("code") == src["code"] and \
                            (not _first(p, "sourceSystem") or
                             g.get("source") == _first(p, "sourceSystem")):
                        concept = {"system": g.get("target"), "code": t.get("code")}
                        source = {"system": g.get("source"), "code": el.get("code")}
                        matches.append((concept, eq, rel, origin, source))
    pairs = []
    for concept, eq, rel, origin, source in matches:
        part = [{"name": "concept", "valueCoding": concept},
                {"name": "equivalence", "valueCode": eq},
                {"name": "originMap", "valueCanonical": origin},
                {"name": "relationship", "valueCode": rel}]
        if source:
            part.append({"name": "source", "valueCoding": source})
        if eq in ("unmatched", "disjoint"):
            continue
        pairs.append(("match", "part", part))
    ok = bool(pairs)
    if not ok:
        pairs.append(("message", "valueString",
                      f"No mapping found for {src.get('system')}#{src['code']}"))
    pairs.append(("result", "valueBoolean", ok))
    return parameters(*pairs)


def expand(registry: Registry, params: dict, resource_id: str | None = None) -> dict:
    """ValueSet/$expand: a flat expansion (filter text and count/offset supported)."""
    p = params_to_multi(params)
    registry = with_request_resources(registry, p)
    engine = ValueSetEngine(registry, _rules(p))
    vs = _first(p, "valueSet") or engine.resolve(_first(p, "url") or resource_id or "",
                                                 _first(p, "valueSetVersion"))
    exp = engine.expand(vs)
    text = (_first(p, "filter") or "").lower()
    active_only = _bool(_first(p, "activeOnly"))
    contains = []
    for e in exp.entries:
        display = e.display or (e.concept or {}).get("display")
        if text and text not in (display or "").lower() and text not in e.code.lower():
            continue
        if active_only and e.cs is not None and e.concept and e.cs.is_inactive(e.concept):
            continue
        item = {"system": e.system, "code": e.code}
        if e.version:
            item["version"] = e.version
        if display:
            item["display"] = display
        contains.append(item)
    total = len(contains)
    offset = int(_first(p, "offset") or 0)
    count = _first(p, "count")
    page = contains[offset: offset + int(count)] if count is not None else contains[offset:]
    result = {k: v for k, v in vs.items() if k not in ("compose", "expansion", "text")}
    result["resourceType"] = "ValueSet"
    result["expansion"] = {"identifier": f"urn:uuid:{uuid.uuid4()}",
                           "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                           "total": total, "offset": offset, "contains": page}
    if exp.missing:
        system, version = exp.missing[0]
        shown = f"'{system}' version '{version}'" if version else f"'{system}'"
        raise _error(404, f"A definition for CodeSystem {shown} could not be found, so the value "
                     "set cannot be expanded", "not-found", "not-found", "UNKNOWN_CODESYSTEM")
    return result


__all__ = ["expand", "lookup", "split_canonical", "translate", "validate_code"]
