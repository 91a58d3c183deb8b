"""The $validate-code answer: every coding checked, then result, message and issues assembled."""

from __future__ import annotations

from vitalflow.terminology.fhir import parameters
from vitalflow.terminology.registry import version_key
from vitalflow.terminology.validate_checker import Checker
from vitalflow.terminology.validate_context import Context, Found, Request, State, add_path, vurl
from vitalflow.terminology.validate_messages import text, version_list

_NOT_CHECKED = ("UNKNOWN_CODESYSTEM", "UNKNOWN_CODESYSTEM_VERSION",
                "UNKNOWN_CODESYSTEM_VERSION_NONE")

def _absolute(url: str) -> bool:
    return ":" in url


def validate_codeable(checker: Checker, req: Request) -> dict:
    """Parameters for the codings of a request against one (prepared) value set."""
    ctx, mode, base = checker.ctx, req.mode, req.path
    opts = ctx.options
    st = State()
    issues = st.issues
    ctx.canonical_status(issues, "ValueSet", checker.vs, checker.vs)
    ok: bool | None = False
    chosen: dict | None = None
    first = {"system": None, "code": None, "version": None}
    codelist: list[str] = []
    no_code = False
    matched: set[int] = set()
    version_params: list[str] = []
    display_out = None

    def msg(m: str | None) -> None:
        if m and m not in st.messages:
            st.messages.append(m)

    codings = req.codeable.get("coding", []) or []
    for i, c in enumerate(codings):
        path = add_path(base, f"coding[{i}]") if mode == "codeableConcept" else base
        if not c.get("code"):
            m = (f"Coding has no code for system {c['system']} and cannot be validated"
                 if c.get("system") else "Coding has no code and cannot be validated")
            msg(m)
            issues.add("warning", "invalid", path, None, m, "invalid-data")
            no_code = True
            break
        found = Found()
        v = checker.check(path, c.get("system"), c.get("version"), c["code"], found, st,
                          c.get("display"))
        if v is True:
            matched.add(i)
        ws = st.implied_system or c.get("system")
        if not first["code"] or v is True:
            first.update(system=c.get("system"), code=c["code"], version=c.get("version"))
        if not first["version"] and found.version:
            first["version"] = found.version
        shown = f"{ws or ''}|{c['version']}#{c['code']}" if c.get("version") else \
            f"{ws or ''}#{c['code']}"
        if c.get("display"):
            shown += f" ('{c['display']}')"
        codelist.append(f"'{shown}'")
        if v is False and not checker.internal and mode == "codeableConcept":
            issues.add("information", "code-invalid", f"{base}.coding[{i}].code",
                       "None_of_the_provided_codes_are_in_the_value_set_one",
                       text("None_of_the_provided_codes_are_in_the_value_set_one", "",
                            checker.vurl, f"'{shown}'"), "this-code-not-in-vs")
        if ok is not True and v is not False:
            ok = v
        lookup_version = c.get("version") or _vs_version_for(checker, c.get("system"))
        if v is True:
            if found.content == "example":
                m = (f"The system {c.get('system')} was found but did not contain enough "
                     f"information to properly validate the code \"{c['code']}\" "
                     f"(\"{c.get('display')}\") (mode = {found.content})")
                msg(m)
                issues.add("warning", "not-found", path, None, m, "vs-invalid")
            elif c.get("display") and found.displays.items:
                check_display(ctx, found, c, msg, issues, path)
            if chosen is None:
                chosen = {"system": c.get("system"), "code": c["code"], "path": path,
                          "version": found.version}
                display_out = found.displays.preferred(opts.languages) or \
                    found.displays.preferred(None)
        elif not opts.membership_only and ws:
            if not _absolute(ws):
                p = {"coding": f"{base}.system", "codeableConcept":
                     f"{base}.coding[{i}].system"}.get(mode, base)
                m = text("Terminology_TX_System_Relative")
                st.messages.append(m)
                issues.add("error", "invalid", p, "Terminology_TX_System_Relative", m,
                           "invalid-data")
            d = _report_outside(ctx, c, ws, lookup_version, path, st, msg, mode, version_params)
            if d:
                display_out = d
    if mode == "codeableConcept" and matched:
        _soften_unknown_systems(codings, matched, st, msg)
    if ok is False and not (no_code and (mode != "codeableConcept" or checker.internal)) and (
            not checker.internal or not issues.has_errors()):
        if mode == "codeableConcept":
            mid = "TX_GENERAL_CC_ERROR_MESSAGE"
            m = text(mid, checker.vurl)
            p = ""
        else:
            mid = "None_of_the_provided_codes_are_in_the_value_set_one"
            m = text(mid, "", checker.vurl, ", ".join(codelist))
            p = "code" if not base else f"{base}.code"
        if issues.add("error", "code-invalid", p, mid, m, "not-in-vs", if_new=True):
            msg(m)
    valid = ok is True and not issues.has_errors()
    return _assemble(req, st, ok, valid, chosen, first, display_out, version_params, msg)


def _vs_version_for(checker: Checker, system: str | None) -> str | None:
    asked = [i["version"] for i in checker.includes
             if i.get("system") == system and i.get("version")]
    return max(asked, key=version_key) if asked else None


def _report_outside(ctx: Context, c: dict, ws: str, version: str | None, path: str, st: State,
                    msg, mode: str, version_params: list[str]) -> str | None:
    """A coding that is not in the value set is still looked up, to say what is wrong with it."""
    issues = st.issues
    cs = ctx.find_cs(ws, version, issues, check_version=True)
    if cs is None:
        if ctx.registry.get("ValueSet", ws) is not None:
            m = text("Terminology_TX_System_ValueSet2", ws)
            msg(m)
            issues.add("error", "invalid", add_path(path, "system"),
                       "Terminology_TX_System_ValueSet2", m, "invalid-data")
            return None
        sup = ctx.supplement(ws, version)
        if sup is not None:
            m = text("CODESYSTEM_CS_NO_SUPPLEMENT", vurl(sup))
            msg(m)
            issues.add("error", "invalid", add_path(path, "system"), "CODESYSTEM_CS_NO_SUPPLEMENT",
                       m, "invalid-data")
            return None
        if ctx.find_cs(ws, None) is None and not version:
            mid, m, key = "UNKNOWN_CODESYSTEM", text("UNKNOWN_CODESYSTEM", ws), ws
        else:
            known = ctx.versions(c.get("system") or ws)
            mid = "UNKNOWN_CODESYSTEM_VERSION" if known else "UNKNOWN_CODESYSTEM_VERSION_NONE"
            key = f"{ws}|{version}" if known else ws
            m = text(mid, ws, version, version_list(known))
        if key not in st.unknown:
            st.unknown[key] = None
            issues.add("error", "not-found", add_path(path, "system"), mid, m, "not-found")
        msg(m)
        return None
    ctx.canonical_status(issues, "CodeSystem", cs.resource, None)
    concept, _ = cs.find(c["code"])
    if concept is None:
        if cs.content == "complete":
            m = text("Unknown_Code_in_Version", c["code"], ws, cs.version)
            msg(m)
            issues.add("error", "code-invalid", add_path(path, "code"), "Unknown_Code_in_Version",
                       m, "invalid-code", if_new=True)
        else:
            issues.add("warning", "code-invalid", add_path(path, "code"),
                       "UNKNOWN_CODE_IN_FRAGMENT",
                       text("UNKNOWN_CODE_IN_FRAGMENT", c["code"], ws, cs.version),
                       "invalid-code", if_new=True)
        return None
    if not c.get("version") and mode == "codeableConcept" and cs.version:
        c["version"] = cs.version
    found = Found(default_language=cs.language or "en")
    found.displays.add_concept(cs, concept)
    if not ctx.options.membership_only and not st.inactive and cs.is_inactive(concept):
        st.inactive, st.inactive_path, st.inactive_code = True, path, c["code"]
        st.status = cs.status(concept) or st.status
    if c.get("display") and found.displays.items:
        check_display(ctx, found, c, msg, issues, path, outside=True)
    if cs.version and mode != "codeableConcept":
        version_params.append(cs.version)
    return found.displays.preferred(ctx.options.languages) or found.displays.preferred(None)


def _soften_unknown_systems(codings: list[dict], matched: set[int], st: State, msg) -> None:
    # A CodeableConcept is valid when any coding is; an unknown system elsewhere only warns.
    for j, c in enumerate(codings):
        if j in matched:
            continue
        sys_path = f"CodeableConcept.coding[{j}].system"
        for iss in st.issues.items:
            ext = (iss.get("extension") or [{}])[0]
            if iss["severity"] == "error" and ext.get("valueString") in _NOT_CHECKED and \
                    sys_path in (iss.get("expression") or []):
                was = iss["details"]["text"]
                ref = f"{c['system']}|{c['version']}" if c.get("version") else c.get("system")
                now = (f"A definition for CodeSystem '{ref}' could not be found, so the code "
                       f"cannot be validated, but another coding was valid")
                iss["severity"], iss["details"]["text"] = "warning", now
                ext["valueString"] = "UNKNOWN_CODESYSTEM_CODING_NOT_CHECKED"
                st.messages[:] = [t for t in st.messages if t != was]
                msg(now)


def _assemble(req: Request, st: State, ok, valid: bool, chosen: dict | None, first: dict,
              display: str | None, version_params: list[str], msg) -> dict:
    mode = req.mode
    cc_mode = mode == "codeableConcept"
    pairs: list[tuple] = [("result", "valueBoolean", valid)]
    if chosen and chosen["system"]:
        pairs.append(("system", "valueUri", chosen["system"]))
    elif ok is True and st.implied_system:
        pairs.append(("system", "valueUri", st.implied_system))
    elif first["system"] and not cc_mode:
        pairs.append(("system", "valueUri", first["system"]))
    for u in st.unknown:
        if ok is False:
            pairs.append(("x-unknown-system", "valueCanonical", u))
        elif not valid:
            pairs.append(("x-caused-by-unknown-system", "valueCanonical", u))
    pairs.append(("normalized-code", "valueCode", st.normal_form))
    code = chosen["code"] if chosen else (first["code"] if not cc_mode else None)
    pairs.append(("code", "valueCode", code))
    # One version is reported: the one the code was found in, else the one it was looked up in.
    versions = version_params + [chosen["version"] if chosen and chosen["version"] else
                                 first["version"] if not cc_mode else None]
    pairs.append(("version", "valueString", next((v for v in versions if v), None)))
    if display and code:
        pairs.append(("display", "valueString", display))
    if st.inactive:
        if not cc_mode or (chosen and st.inactive_path == chosen["path"]):
            pairs.append(("inactive", "valueBoolean", True))
            if st.status and st.status != "inactive":
                pairs.append(("status", "valueCode", st.status))
        if st.status in ("inactive", "DISCOURAGED"):
            m = text("INACTIVE_CONCEPT_FOUND", st.status, st.inactive_code or first["code"])
        else:
            m = text("INACTIVE_CONCEPT_FOUND_ADD", st.status, st.inactive_code or first["code"],
                     "inactive")
        msg(m)
        st.issues.add("warning", "business-rule", st.inactive_path or "code",
                      "INACTIVE_CONCEPT_FOUND", m, "code-comment")
    elif st.status and st.status.lower() == "deprecated":
        pairs.append(("status", "valueCode", "deprecated"))
        m = text("DEPRECATED_CONCEPT_FOUND", st.status, first["code"])
        msg(m)
        st.issues.add("warning", "business-rule", req.path or "code", "DEPRECATED_CONCEPT_FOUND", m,
                      "code-comment")
    for i in st.issues.items:
        if i["severity"] == "error":
            msg(i["details"]["text"])
    if st.messages:
        pairs.append(("message", "valueString", "; ".join(sorted(st.messages))))
    if cc_mode:
        pairs.append(("codeableConcept", "valueCodeableConcept", req.codeable))
    if st.issues.items:
        pairs.append(("issues", "resource",
                      {"resourceType": "OperationOutcome", "issue": st.issues.items}))
    return parameters(*pairs)


def check_display(ctx: Context, found: Found, c: dict, msg, issues, path: str,
                  outside: bool = False) -> None:
    """Issues for a display that is not (or not in the requested language) a valid one."""
    opts = ctx.options
    displays, display, langs = found.displays, c["display"], opts.languages
    system = c.get("system")
    hit, ws_only = displays.has_display(langs, None, display, False)
    severity = "warning" if opts.display_warning else "error"
    base = ("Display_Name_WS_for__should_be_one_of__instead_of" if ws_only
            else "Display_Name_for__should_be_one_of__instead_of")
    if hit:
        if not displays.has_display(langs, None, display, True)[0]:
            allowed = displays.allowed()
            status = displays.status_of(display)
            m = text("INACTIVE_DISPLAY_FOUND", display, c["code"],
                     ", ".join(f'"{a}"' for a in allowed),
                     "deprecated" if status == "withdrawn" else status)
            # The display is a designation of the concept, just no longer a current one.
            issues.add("warning", "invalid", add_path(path, "display"), "INACTIVE_DISPLAY_FOUND",
                       m, "display-comment")
        return
    count = displays.count(langs, None, True)
    mid = base
    if outside:
        if count == 0:
            severity, mid = "warning", "NO_VALID_DISPLAY_AT_ALL"
            m = text(mid, display, system, c["code"])
        else:
            m = text(f"{base}_{'one' if count == 1 else 'other'}", count, system, c["code"],
                     displays.present(langs, True), display, opts.lang_summary())
    else:
        if count == 0:
            severity = "warning"
            count = displays.count(langs, None, False)
        if count == 0:
            default = displays.preferred(None)
            if not default:
                mid = "NO_VALID_DISPLAY_AT_ALL"
                m = text(mid, display, system, c["code"])
            elif displays.has_display(langs, found.default_language, display, False)[0]:
                mid, severity = "NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_OK", "information"
                m = text(mid, display, system, c["code"], opts.lang_summary(), default)
            else:
                mid = "NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_ERR"
                severity = "warning" if opts.display_warning else "error"
                m = text(mid, display, system, c["code"], opts.lang_summary(), default)
        else:
            m = text(f"{base}_{'one' if count == 1 else 'other'}", count, system, c["code"],
                     displays.present(langs, True), display, opts.lang_summary())
    msg(m)
    issues.add(severity, "invalid", add_path(path, "display"), mid, m, "invalid-display")


