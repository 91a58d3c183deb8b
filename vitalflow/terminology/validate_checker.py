"""Whether one coding is in a value set, walking its includes the way tx.fhir.org does."""

from __future__ import annotations

from functools import cmp_to_key

from vitalflow.terminology.fhir import FhirError, issue
from vitalflow.terminology.registry import version_key
from vitalflow.terminology.validate_context import (
    Context,
    Found,
    PrepareError,
    State,
    add_path,
    more_detailed,
    vurl,
)
from vitalflow.terminology.validate_include import IncludeChecks
from vitalflow.terminology.validate_messages import text, version_list
from vitalflow.terminology.valueset import ValueSetEngine


def _cmp_includes(a: dict, b: dict) -> int:
    # Several versions of one system: the most recent is tried first.
    if a.get("system") == b.get("system") and a.get("version") and b.get("version"):
        ka, kb = version_key(a["version"]), version_key(b["version"])
        return (ka < kb) - (ka > kb)
    return 0


class Checker(IncludeChecks):
    """Membership checks against one value set (imports get their own checkers)."""

    def __init__(self, ctx: Context, vs: dict, internal: bool = False,
                 container: dict | None = None):
        self.ctx, self.vs, self.internal = ctx, vs, internal
        self.container = container or vs  # '#id' references resolve among its contained
        self.vurl = vurl(vs)
        self.others: dict[str, Checker] = {}
        self.compose = vs.get("compose")
        self.includes = list((self.compose or {}).get("include", []) or [])
        self.excludes = list((self.compose or {}).get("exclude", []) or [])
        self.engine = ValueSetEngine(ctx.registry, ctx.options.rules)

    # -- preparation ----------------------------------------------------------------------------
    def prepare(self, chain: tuple[str, ...] = ()) -> None:
        if self.vurl in chain:
            raise FhirError(400, [issue("error", "processing",
                                        f"Circular reference detected in value set {self.vurl}",
                                        tx_type="vs-invalid",
                                        message_id="VALUESET_CIRCULAR_REFERENCE")])
        for kind, sets in (("include", self.includes), ("exclude", self.excludes)):
            for i, cc in enumerate(sets):
                for ref in cc.get("valueSet", []) or []:
                    pinned = self.ctx.pin_value_set(ref)
                    if pinned not in self.others:
                        other = self._resolve(pinned)
                        if other is None:
                            raise PrepareError(issue(
                                "error", "not-found",
                                text("Unable_to_resolve_value_Set_", pinned),
                                tx_type="not-found", message_id="Unable_to_resolve_value_Set_"))
                        checker = Checker(self.ctx, other, container=self.container)
                        checker.prepare((*chain, self.vurl))
                        self.others[pinned] = checker
                system = cc.get("system")
                cs = self.ctx.find_cs(system, cc.get("version")) if system else None
                for j, flt in enumerate(cc.get("filter", []) or [] if cs else []):
                    if not flt.get("value"):
                        raise FhirError(400, [issue(
                            "error", "invalid", text(
                                "UNABLE_TO_HANDLE_SYSTEM_FILTER_WITH_NO_VALUE", cs.url,
                                flt.get("property"), flt.get("op")),
                            tx_type="vs-invalid",
                            message_id="UNABLE_TO_HANDLE_SYSTEM_FILTER_WITH_NO_VALUE",
                            expression=f"ValueSet.compose.{kind}[{i}].filter[{j}]")])

    def _resolve(self, ref: str) -> dict | None:
        if ref.startswith("#"):
            return next((r for r in self.container.get("contained", []) or []
                         if r.get("resourceType") == "ValueSet" and r.get("id") == ref[1:]),
                        None)
        return self.ctx.registry.get("ValueSet", ref)

    # -- one coding -----------------------------------------------------------------------------
    def check(self, path: str, system: str | None, version: str | None, code: str,
              found: Found, st: State, display: str | None = None) -> bool | None:
        """True (in the value set), False (not), or None (could not tell: unknown system)."""
        opts, issues = self.ctx.options, st.issues
        if not system and not opts.infer_system:
            msg = text("Coding_has_no_system__cannot_validate")
            st.messages.append(msg)
            issues.add("warning", "invalid", path, "Coding_has_no_system__cannot_validate", msg,
                       "invalid-data")
            return False
        if not system:
            systems: list[str] = []
            system = self.determine_system(code, systems)
            if not system:
                if len(systems) > 1:
                    mid = "Unable_to_resolve_system__value_set_has_multiple_matches"
                    msg = text(mid, code, self.vurl, ", ".join(systems))
                else:
                    mid = "UNABLE_TO_INFER_CODESYSTEM"
                    msg = text(mid, code, self.vurl)
                st.messages.append(msg)
                issues.add("error", "not-found", "code", mid, msg, "cannot-infer")
                return False
            st.implied_system = system
        if self.compose is None:
            return self._check_expansion(path, system, version, code, found, st)
        result: bool | None = False
        chosen = None
        if not version:
            asked = {i.get("version") for i in self.includes
                     if i.get("system") == system and i.get("version")}
            if len(asked) > 1:
                chosen = self._pick_version(asked, system, code, display)
        for cc in sorted(self.includes, key=cmp_to_key(_cmp_includes)):
            if not cc.get("system"):
                result = True
            elif cc["system"] == system and (not chosen or cc.get("version") == chosen) and \
                    self._use_this_version(cc, version):
                v = self.determine_version(path, system, cc.get("version"), version, st)
                cs = self.ctx.find_cs(system, v, issues, check_version=True, path=path)
                if cs is None:
                    if opts.membership_only:
                        return False
                    self._unknown_system(path, system, v, st)
                    return None
                found.default_language = cs.language or "en"
                self.ctx.canonical_status(issues, "CodeSystem", cs.resource, self.vs)
                found.content = cs.content
                result = self.check_concept_set(path, "in", cs, cc, code, found, st)
                if result:
                    found.version = cs.version
            else:
                result = False
            for ref in cc.get("valueSet", []) or []:
                other = self.others[self.ctx.pin_value_set(ref)]
                self.ctx.canonical_status(issues, "ValueSet", other.vs, self.vs)
                if result is True:
                    result = other.check(path, system, version, code, found, st, display)
            if result is True:
                break
        if result is True:
            for cc in self.excludes:
                excluded = True
                if cc.get("system"):
                    cs = self.ctx.find_cs(cc["system"], cc.get("version"), issues,
                                          check_version=True, path=path)
                    excluded = cs is not None and cs.url == system and self.check_concept_set(
                        path, "not in", cs, cc, code, found, st)
                for ref in cc.get("valueSet", []) or []:
                    other = self.others[self.ctx.pin_value_set(ref)]
                    excluded = excluded and other.check(path, system, version, code, found, st,
                                                        display) is True
                if excluded:
                    return False
        return result

    def _unknown_system(self, path: str, system: str, version: str | None, st: State) -> None:
        add = True
        if not version:
            mid, msg = "UNKNOWN_CODESYSTEM", text("UNKNOWN_CODESYSTEM", system)
            st.unknown[system] = None
        else:
            known = self.ctx.versions(system)
            mid = "UNKNOWN_CODESYSTEM_VERSION" if known else "UNKNOWN_CODESYSTEM_VERSION_NONE"
            key = f"{system}|{version}" if known else system
            msg = text(mid, system, version, version_list(known))
            add = key not in st.unknown
            st.unknown[key] = None
        st.messages.append(msg)
        if add:
            st.issues.add("error", "not-found", add_path(path, "system"), mid, msg, "not-found")

    def _use_this_version(self, cc: dict, version: str | None) -> bool:
        if not version or cc.get("version") == version:
            return True
        return not any(i.get("version") == version for i in self.includes)

    def _pick_version(self, asked: set[str], system: str, code: str,
                      display: str | None) -> str | None:
        """With several versions included and none asked for, the latest that has the code."""
        hits = []
        for v in asked:
            cs = self.ctx.find_cs(system, v, apply_rules=False)
            concept = cs.find(code)[0] if cs else None
            if concept and (not display or display in cs.displays(concept)):
                hits.append(v)
        if len(hits) == len(asked):
            return None
        return max(hits or asked, key=version_key)

    def determine_version(self, path: str, system: str, vs_version: str | None,
                          coding_version: str | None, st: State) -> str | None:
        """The version to validate against; a coding version that disagrees is an issue."""
        ctx = self.ctx
        result = ctx.options.version_base(system, vs_version)
        if not coding_version:
            return result
        if result and coding_version != result and more_detailed(result, coding_version):
            result = coding_version
        if not result and any(v == coding_version or more_detailed(coding_version, v)
                              for v in ctx.versions(system)):
            result = coding_version
        cs = ctx.find_cs(system, result)
        if cs is not None and cs.version != coding_version and \
                not more_detailed(coding_version, cs.version):
            severity = "error"
            if not result:
                severity, mid = "warning", "VALUESET_VALUE_MISMATCH_DEFAULT"
                msg = text(mid, system, cs.version, vs_version, coding_version)
            elif result != vs_version:
                mid = "VALUESET_VALUE_MISMATCH_CHANGED"
                msg = text(mid, system, result, vs_version or "", coding_version)
            else:
                mid = "VALUESET_VALUE_MISMATCH"
                msg = text(mid, system, vs_version, coding_version)
            st.issues.add(severity, "invalid", add_path(path, "version"), mid, msg, "vs-invalid")
            if severity == "error":
                st.messages.append(msg)
            if ctx.find_cs(system, coding_version, apply_rules=False) is None:
                st.unknown[f"{system}|{coding_version}"] = None
                msg = text("UNKNOWN_CODESYSTEM_VERSION", system, coding_version,
                           version_list(ctx.versions(system)))
                st.issues.add("error", "not-found", add_path(path, "system"),
                              "UNKNOWN_CODESYSTEM_VERSION", msg, "not-found")
                st.messages.append(msg)
        elif cs is None and result != coding_version:
            msg = text("VALUESET_VALUE_MISMATCH", system, result, coding_version)
            st.issues.add("error", "invalid", add_path(path, "version"), "VALUESET_VALUE_MISMATCH",
                          msg, "vs-invalid")
            st.messages.append(msg)
        return result

    def determine_system(self, code: str, systems: list[str]) -> str:
        def see(system: str) -> None:
            if system not in systems:
                systems.append(system)
        if any(i.get("valueSet") or not i.get("system") for i in self.includes) or any(
                e.get("valueSet") or not e.get("system") or e.get("filter")
                for e in self.excludes):
            return self._system_from_expansion(code, systems)
        result = ""
        for inc in self.includes:
            cs = self.ctx.find_cs(inc["system"], None, apply_rules=False)
            if cs is None:
                return ""
            listed = [c for c in inc.get("concept", []) or [] if c.get("code") == code] \
                if inc.get("concept") else ([code] if cs.find(code)[0] else [])
            if listed:
                see(inc["system"])
                if not result:
                    result = inc["system"]
                elif result != inc["system"]:
                    if inc.get("filter") and not inc.get("concept"):
                        return self._system_from_expansion(code, systems)
                    return ""
        return result

    def _system_from_expansion(self, code: str, systems: list[str]) -> str:
        found = [e.system for e in self.engine.expand(self.vs).entries if e.code == code]
        for s in found:
            if s not in systems:
                systems.append(s)
        return found[0] if len(found) == 1 else ""

    def _check_expansion(self, path, system, version, code, found: Found, st: State):
        entries = [c for c in _flatten((self.vs.get("expansion") or {}).get("contains"))
                   if c.get("system") == system and c.get("code") == code
                   and (not version or not c.get("version") or c.get("version") == version)]
        if not entries:
            return False
        cs = self.ctx.find_cs(system, entries[0].get("version") or version, st.issues,
                              check_version=True, path=path)
        if cs is None:
            self._unknown_system(path, system, entries[0].get("version") or version, st)
            return None
        found.version, found.content = cs.version, cs.content
        found.default_language = cs.language or "en"
        concept = cs.find(code)[0]
        if concept is None:
            st.issues.add("error", "code-invalid", add_path(path, "code"),
                          "Unknown_Code_in_Version",
                          text("Unknown_Code_in_Version", code, cs.url, cs.version),
                          "invalid-code")
            return False
        st.see_status(cs, concept, path, code)
        found.displays.add_concept(cs, concept)
        return True


def _flatten(items: list[dict] | None) -> list[dict]:
    out = []
    for c in items or []:
        out.append(c)
        out.extend(_flatten(c.get("contains")))
    return out
