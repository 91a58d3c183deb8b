"""$validate-code (CodeSystem and ValueSet) following the messages of the HL7 reference servers."""

from __future__ import annotations

from dataclasses import dataclass, field

from vitalflow.terminology.fhir import FhirError, issue, parameters
from vitalflow.terminology.registry import Registry, split_canonical, version_matches
from vitalflow.terminology.valueset import Expansion, ValueSetEngine, VersionRules


@dataclass
class Request:
    """The inputs of one $validate-code call, already taken out of Parameters."""

    codings: list[dict]
    form: str  # "code" | "coding" | "codeableConcept"
    valueset: dict | None = None
    cs_url: str | None = None
    cs_version: str | None = None
    infer_system: bool = False
    active_only: bool = False
    languages: list[str] = field(default_factory=list)
    rules: VersionRules = field(default_factory=VersionRules)
    lenient_display: bool = False
    allow_abstract: bool = True
    codeable_concept: dict | None = None


@dataclass
class Outcome:
    issues: list[dict] = field(default_factory=list)
    valid: bool = True
    system: str | None = None
    version: str | None = None
    code: str | None = None
    display: str | None = None
    inactive: bool | None = None
    status: str | None = None
    unknown_system: str | None = None
    caused_by: list[str] = field(default_factory=list)


def _prefix(form: str, index: int) -> str:
    return {"code": "", "coding": "Coding.",
            "codeableConcept": f"CodeableConcept.coding[{index}]."}[form]


def _loc(form: str, index: int, element: str) -> str:
    p = _prefix(form, index)
    return (p + element) if p or element else element or "code"


def _versions_text(versions: list[str]) -> str:
    if not versions:
        return "No versions of this code system are known"
    if len(versions) == 1:
        return f"Valid versions: {versions[0]}"
    return "Valid versions: " + ", ".join(versions[:-1]) + " or " + versions[-1]


def _vs_ref(vs: dict) -> str:
    return f"{vs.get('url')}|{vs['version']}" if vs.get("version") else str(vs.get("url"))


class Validator:
    def __init__(self, registry: Registry, req: Request):
        self.registry = registry
        self.req = req
        self.engine = ValueSetEngine(registry, req.rules)
        self.expansion: Expansion | None = None
        if req.valueset is not None:
            self.expansion = self.engine.expand(req.valueset)

    # -- one coding ---------------------------------------------------------------------------
    def check(self, coding: dict, index: int) -> Outcome:
        req, form = self.req, self.req.form
        out = Outcome(code=coding.get("code"))
        self._display = coding.get("display")
        system, code = coding.get("system"), coding.get("code") or ""
        version, display = coding.get("version"), coding.get("display")
        loc = lambda el: _loc(form, index, el)
        if not system and self.expansion is not None and (req.infer_system or form == "code"):
            systems = sorted({e.system for e in self.expansion.find(None, code)})
            if len(systems) == 1:
                system = systems[0]
            elif len(systems) > 1:
                out.valid = False
                out.issues.append(issue(
                    "error", "not-found",
                    f"The System URI could not be determined for the code '{code}' in the "
                    f"ValueSet '{_vs_ref(req.valueset)}': value set expansion has multiple "
                    f"matches: [{', '.join(systems)}]", tx_type="cannot-infer",
                    message_id="Unable_to_resolve_system__value_set_has_multiple_matches",
                    expression=loc("code")))
                return out
            else:
                out.valid = False
                out.issues.append(self._not_in_vs(None, None, code, loc("code")))
                out.issues.append(issue(
                    "error", "not-found",
                    f"Unable to infer the code system for the code '{code}' in the value set "
                    f"'{_vs_ref(req.valueset)}'", tx_type="cannot-infer",
                    message_id="UNABLE_TO_INFER_CODESYSTEM", expression=loc("code")))
                return out
        if not system:
            out.valid = False
            out.issues.append(issue(
                "warning", "invalid",
                "Coding has no system. A code with no system has no defined meaning, and it "
                "cannot be validated. A system should be provided", tx_type="invalid-data",
                message_id="Coding_has_no_system__cannot_validate", expression=loc("")[:-1]
                or "code"))
            return out
        out.system = system
        if ":" not in system:
            out.valid = False
            out.issues.append(issue(
                "error", "invalid",
                "Coding.system must be an absolute reference, not a local reference",
                tx_type="invalid-data", message_id="Terminology_TX_System_Relative",
                expression=loc("system")))
            return out
        if self.registry.get("ValueSet", system) is not None and \
                self.registry.get("CodeSystem", system) is None:
            out.valid = False
            out.issues.append(issue(
                "error", "invalid",
                f"The Coding references a value set, not a code system ('{system}')",
                tx_type="invalid-data", message_id="Terminology_TX_System_ValueSet2",
                expression=loc("system")))
            return out
        sup = self.registry.supplement(system)
        if sup is not None:
            out.valid = False
            out.issues.append(issue(
                "error", "invalid",
                f"CodeSystem {_vs_ref(sup)} is a supplement, so can't be used as a value in "
                f"Coding.system", tx_type="invalid-data",
                message_id="CODESYSTEM_CS_NO_SUPPLEMENT", expression=loc("system")))
            return out

        use_version = self._pick_version(system, version, out, loc)
        cs = self.registry.codesystem(system, use_version)
        if cs is None:
            known = self.registry.versions("CodeSystem", system)
            has_any = self.registry.get("CodeSystem", system) is not None
            out.valid = False
            if use_version and has_any:
                out.issues.append(issue(
                    "error", "not-found",
                    f"A definition for CodeSystem '{system}' version '{use_version}' could not "
                    f"be found, so the code cannot be validated. {_versions_text(known)}",
                    tx_type="not-found", message_id="UNKNOWN_CODESYSTEM_VERSION",
                    expression=loc("system")))
                out.caused_by.append(f"{system}|{use_version}")
            elif use_version:
                out.issues.append(issue(
                    "error", "not-found",
                    f"A definition for CodeSystem '{system}' version '{use_version}' could not "
                    f"be found, so the code cannot be validated. {_versions_text([])}",
                    tx_type="not-found", message_id="UNKNOWN_CODESYSTEM_VERSION_NONE",
                    expression=loc("system")))
                out.unknown_system = f"{system}|{use_version}"
            else:
                out.issues.append(issue(
                    "error", "not-found",
                    f"A definition for CodeSystem '{system}' could not be found, so the code "
                    f"cannot be validated", tx_type="not-found",
                    message_id="UNKNOWN_CODESYSTEM", expression=loc("system")))
                out.unknown_system = system
            if self.expansion is not None and form == "codeableConcept":
                out.issues.append(self._not_in_vs(system, None, code, loc("code"), info=True,
                                                  cc_index=index))
            out.version = use_version if use_version and has_any and version else None
            return out
        out.version = cs.version
        concept, by_case = cs.find(code)
        if concept is None:
            if cs.content == "fragment":
                out.issues.append(issue(
                    "warning", "code-invalid",
                    f"Unknown Code '{code}' in the CodeSystem '{system}' version "
                    f"'{cs.version}' - note that the code system is labeled as a fragment, so "
                    f"the code may be valid in some other fragment", tx_type="invalid-code",
                    message_id="UNKNOWN_CODE_IN_FRAGMENT", expression=loc("code")))
            else:
                out.valid = False
                out.issues.append(issue(
                    "error", "code-invalid",
                    f"Unknown code '{code}' in the CodeSystem '{system}' version '{cs.version}'",
                    tx_type="invalid-code", message_id="Unknown_Code_in_Version",
                    expression=loc("code")))
            if self.expansion is not None:
                entries = self.expansion.find(system, code)
                if not entries:
                    out.valid = False
                    out.issues.append(self._not_in_vs(system, version, code, loc("code"),
                                                      info=form == "codeableConcept",
                                                      cc_index=index))
            return out
        out.code = concept["code"]
        if by_case:
            out.issues.append(issue(
                "information", "business-rule",
                f"The code '{code}' differs from the correct code '{concept['code']}' by case. "
                f"Although the code system '{system}|{cs.version}' is case insensitive, "
                f"implementers are strongly encouraged to use the correct case anyway",
                tx_type="code-rule", message_id="CODE_CASE_DIFFERENCE",
                expression=loc("code")))
        out.display = concept.get("display")
        inactive = cs.is_inactive(concept)
        status = cs.status(concept)
        if inactive:
            out.inactive = True
            out.status = status if status and status != "inactive" else None
            shown = f"{status} and inactive" if status and status != "inactive" else "inactive"
            out.issues.append(issue(
                "warning", "business-rule",
                f"The concept '{concept['code']}' has a status of {shown} and its use should "
                f"be reviewed", tx_type="code-comment", message_id="INACTIVE_CONCEPT_FOUND",
                expression=loc("")[:-1] or "code"))
        elif status == "deprecated":
            out.status = status
            out.issues.append(issue(
                "warning", "business-rule",
                f"The concept '{concept['code']}' is deprecated and its use should be reviewed",
                tx_type="code-comment", message_id="DEPRECATED_CONCEPT_FOUND",
                expression=loc("")[:-1] or "code"))
        in_vs = True
        if self.expansion is not None:
            entries = [e for e in self.expansion.find(system, concept["code"])
                       if e.version is None or e.version == cs.version]
            if inactive and req.active_only:
                entries = []
                out.issues.append(issue(
                    "error", "business-rule",
                    f"The concept '{concept['code']}' is valid but is not active",
                    tx_type="code-rule", message_id="STATUS_CODE_WARNING_CODE",
                    expression=loc("code")))
            if entries and cs.is_abstract(concept) and not req.allow_abstract:
                entries = []
                out.issues.append(issue(
                    "error", "business-rule",
                    f"Code '{system}#{concept['code']}' is abstract, and not allowed in this "
                    f"context", tx_type="code-rule", message_id="ABSTRACT_CODE_NOT_ALLOWED",
                    expression=loc("code")))
            if not entries:
                in_vs = False
                out.issues.append(self._not_in_vs(system, version, code, loc("code"),
                                                  info=form == "codeableConcept",
                                                  cc_index=index))
            else:
                self._entry_status(entries[0], out, loc)
        if not in_vs:
            out.valid = False
        if display:
            self._check_display(cs, concept, display, out, loc)
        return out

    def _entry_status(self, entry, out: Outcome, loc) -> None:
        for ext in (entry.include_concept or {}).get("extension", []) or []:
            if ext.get("url", "").endswith("valueset-concept-status") or ext.get(
                    "url", "").endswith("structuredefinition-standards-status"):
                value = ext.get("valueCode")
                if value == "deprecated":
                    vs = self.req.valueset
                    out.issues.append(issue(
                        "warning", "business-rule",
                        f"The presence of the concept '{entry.code}' in the system "
                        f"'{entry.system}' in the value set {_vs_ref(vs)} is marked with a "
                        f"status of deprecated and its use should be reviewed",
                        tx_type="code-comment", message_id="CONCEPT_DEPRECATED_IN_VALUESET",
                        expression=loc("code")))

    def _not_in_vs(self, system, version, code, where, info=False, cc_index=0,
                   display=None) -> dict:
        vs = self.req.valueset or {}
        ref = f"{system}|{version}#{code}" if version else (
            f"{system}#{code}" if system else code)
        display = display if display is not None else self._display
        if display:
            ref += f" ('{display}')"
        text = f"The provided code '{ref}' was not found in the value set '{_vs_ref(vs)}'"
        return issue("information" if info else "error", "code-invalid", text,
                     tx_type="this-code-not-in-vs" if info else "not-in-vs",
                     message_id="None_of_the_provided_codes_are_in_the_value_set_one",
                     expression=where)

    def _pick_version(self, system: str, version: str | None, out: Outcome, loc) -> str | None:
        """The code-system version to validate against, recording version conflicts."""
        rules = self.req.rules
        if system in rules.force:
            forced = rules.force[system]
            use = version if version and version_matches(forced, version) else forced
        elif version:
            use = version
        else:
            use = None
            if self.expansion is not None:
                asked = [v for v in self.expansion.include_versions.get(system, []) if v]
                if asked:
                    use = asked[0]
            if use is None and self.req.cs_version:
                use = self.req.cs_version
            if use is None:
                use = rules.default.get(system)
        if use and self._is_pattern(use):
            known = [v for v in self.registry.versions("CodeSystem", system)
                     if version_matches(use, v)]
            use = known[-1] if known else use
        if self.expansion is not None and version:
            for asked in self.expansion.include_versions.get(system, []):
                if asked and not version_matches(asked, version):
                    if system in rules.force:
                        continue
                    out.issues.append(issue(
                        "error", "invalid",
                        f"The code system '{system}' version '{asked}' in the ValueSet include "
                        f"is different to the one in the value ('{version}')",
                        tx_type="vs-invalid", message_id="VALUESET_VALUE_MISMATCH",
                        expression=loc("version")))
                    out.valid = False
                    if self.registry.get("CodeSystem", system, asked) is None:
                        out.caused_by.append(f"{system}|{asked}")
                elif not asked:
                    latest = rules.default.get(system) or (self.registry.versions(
                        "CodeSystem", system) or [None])[-1]
                    if latest and latest != version:
                        out.issues.append(issue(
                            "warning", "invalid",
                            f"The code system '{system}' version '{latest}' for the versionless "
                            f"include in the ValueSet include is different to the one in the "
                            f"value ('{version}')", tx_type="vs-invalid",
                            message_id="VALUESET_VALUE_MISMATCH_DEFAULT",
                            expression=loc("version")))
        check = rules.check.get(system)
        if check and use and not version_matches(check, use):
            out.valid = False
            out.issues.append(issue(
                "error", "exception",
                f"The version '{use}' is not allowed for system '{system}': required to be "
                f"'{check}' by a version-check parameter", tx_type="version-error",
                message_id="VALUESET_VERSION_CHECK", expression=loc("version")))
        return use

    @staticmethod
    def _is_pattern(version: str) -> bool:
        return any(seg in ("x", "X", "*") for seg in version.split("."))

    def _check_display(self, cs, concept, display, out: Outcome, loc) -> None:
        langs = self.req.languages
        valid = cs.displays(concept)
        norm = lambda s: " ".join(s.split())
        if langs:
            for_lang = cs.displays(concept, langs)
            if display in for_lang:
                return
            if not for_lang:
                if display in valid:
                    out.issues.append(issue(
                        "information", "invalid",
                        f"There are no valid display names found for the code "
                        f"{cs.url}#{concept['code']} for language(s) '{', '.join(langs)}'. The "
                        f"display is '{display}' which is a valid display for the default "
                        f"language", tx_type="invalid-display",
                        message_id="NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_OK",
                        expression=loc("display")))
                    return
                out.valid = False
                out.issues.append(issue(
                    "error", "invalid",
                    f"Wrong Display Name '{display}' for {cs.url}#{concept['code']}. There are "
                    f"no valid display names found for language(s) '{', '.join(langs)}'. "
                    f"Default display is '{concept.get('display')}'", tx_type="invalid-display",
                    message_id="NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_ERR",
                    expression=loc("display")))
                return
            valid = for_lang
        elif display in valid:
            return
        ws = any(norm(display) == norm(v) for v in valid)
        severity = "warning" if self.req.lenient_display else "error"
        if severity == "error":
            out.valid = False
        lang_text = ", ".join(langs) if langs else "--"
        choices = " or ".join(f"'{v}'" for v in valid)
        text = (f"Wrong Display Name '{display}' for {cs.url}#{concept['code']}. Valid display "
                f"is {'one of ' if len(valid) > 1 else ''}{choices} (for the language(s) "
                f"'{lang_text}')")
        out.issues.append(issue(
            severity, "invalid", text, tx_type="invalid-display",
            message_id="Display_Name_WS_for__should_be_one_of__instead_of" if ws
            else "Display_Name_for__should_be_one_of__instead_of", expression=loc("display")))


def run(registry: Registry, req: Request) -> dict:
    """Parameters for a $validate-code request."""
    v = Validator(registry, req)
    results = [v.check(c, i) for i, c in enumerate(req.codings)]
    issues: list[dict] = []
    if req.form == "codeableConcept":
        valid = any(r.valid for r in results) if req.valueset is not None else all(
            r.valid for r in results)
        chosen = next((r for r in results if r.valid), results[0] if len(results) == 1 else None)
        for r in results:
            issues.extend(r.issues)
        if req.valueset is not None and not valid:
            issues.insert(0, issue(
                "error", "code-invalid",
                f"No valid coding was found for the value set '{_vs_ref(req.valueset)}'",
                tx_type="not-in-vs", message_id="TX_GENERAL_CC_ERROR_MESSAGE"))
        if valid and chosen is not None:
            # A valid coding makes the others' not-in-value-set notes irrelevant.
            issues = [i for i in issues if i["severity"] != "error"]
    else:
        chosen = results[0]
        valid = chosen.valid
        issues = chosen.issues
    errors_first = sorted({(i["details"]["text"]) for i in issues
                           if i["severity"] in ("error", "warning")} if not valid else
                          {i["details"]["text"] for i in issues
                           if i["severity"] in ("error", "warning")})
    message = "; ".join(errors_first) if errors_first else None
    caused = [c for r in results for c in r.caused_by]
    unknown = [r.unknown_system for r in results if r.unknown_system]
    pairs = []
    if req.form == "codeableConcept":
        pairs.append(("codeableConcept", "valueCodeableConcept", req.codeable_concept))
    if chosen is not None and not (req.form == "codeableConcept" and not valid
                                   and len(results) > 1):
        pairs += [("code", "valueCode", chosen.code if chosen.system or chosen.code else None),
                  ("display", "valueString", chosen.display),
                  ("inactive", "valueBoolean", chosen.inactive)]
    pairs.append(("issues", "resource",
                  {"resourceType": "OperationOutcome", "issue": issues} if issues else None))
    pairs.append(("message", "valueString", message))
    pairs.append(("result", "valueBoolean", bool(valid)))
    if chosen is not None and not (req.form == "codeableConcept" and not valid
                                   and len(results) > 1):
        pairs += [("status", "valueCode", chosen.status),
                  ("system", "valueUri", chosen.system if not chosen.unknown_system else None),
                  ("version", "valueString", chosen.version)]
    for c in dict.fromkeys(caused):
        pairs.append(("x-caused-by-unknown-system", "valueCanonical", c))
    for u in dict.fromkeys(unknown):
        pairs.append(("x-unknown-system", "valueCanonical", u))
    return parameters(*pairs)


def split_system_version(values: list) -> dict[str, str]:
    out = {}
    for v in values or []:
        base, version = split_canonical(v)
        if base and version:
            out[base] = version
    return out


__all__ = ["FhirError", "Request", "run", "split_system_version"]
