"""Whether a code is in one include (or exclude) of a value set: concepts, filters, status."""

from __future__ import annotations

from vitalflow.terminology.codesystem import CodeSystemView
from vitalflow.terminology.validate_context import Found, State, add_path
from vitalflow.terminology.validate_messages import text

_DEPRECATED_IN_VS = "http://hl7.org/fhir/StructureDefinition/valueset-deprecated"
_STANDARDS_STATUS = "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status"


class IncludeChecks:
    """The part of a value-set checker that looks at one concept set (mixed into Checker)."""

    def check_concept_set(self, path: str, role: str, cs: CodeSystemView, cset: dict, code: str,
                          found: Found, st: State) -> bool:
        opts, issues = self.ctx.options, st.issues
        reporting = role != "not in"
        exclude_inactive = (self.compose or {}).get("inactive") is False
        if not cset.get("concept") and not cset.get("filter"):
            concept, _ = cs.find(code)
            if concept is None:
                if not opts.membership_only and reporting:
                    if cs.content != "complete":
                        issues.add("warning", "code-invalid", add_path(path, "code"),
                                   "UNKNOWN_CODE_IN_FRAGMENT",
                                   text("UNKNOWN_CODE_IN_FRAGMENT", code, cs.url, cs.version),
                                   "invalid-code")
                        return True
                    mid = "Unknown_Code_in_Version" if cs.version else "Unknown_Code_in"
                    issues.add("error", "code-invalid", add_path(path, "code"), mid,
                               text(mid, code, cs.url, cs.version), "invalid-code")
                return False
            return self._found(path, role, cs, concept, code, found, st, exclude_inactive,
                               normalise=True)
        for cc in cset.get("concept", []) or []:
            if cc.get("code") != code:
                continue
            concept, _ = cs.find(code)
            if concept is None:
                continue
            found.displays.add_concept(cs, concept)
            found.displays.add_include_concept(cc, self.vs.get("language"))
            if self._abstract(path, cs, concept, code, st):
                continue
            if exclude_inactive and cs.is_inactive(concept):
                if not opts.membership_only:
                    st.inactive, st.inactive_path, st.inactive_code = True, path, code
                    st.status = cs.status(concept)
                return False
            status = next((e.get("valueCode") for e in cc.get("extension", []) or []
                           if e.get("url") == _STANDARDS_STATUS), None)
            if status not in ("withdrawn", "deprecated") and any(
                    e.get("url") == _DEPRECATED_IN_VS for e in cc.get("extension", []) or []):
                status = "deprecated"
            if status in ("withdrawn", "deprecated"):
                issues.add("warning", "business-rule", add_path(path, "code"),
                           "CONCEPT_DEPRECATED_IN_VALUESET",
                           text("CONCEPT_DEPRECATED_IN_VALUESET", cs.url, code, status,
                                self.vurl), "code-comment")
            st.see_status(cs, concept, path, code)
            return True
        if cset.get("filter"):
            codes = set(cs.concepts)
            for i, flt in enumerate(cset["filter"]):
                codes &= self.engine._filter(cs, flt, i)
            concept, _ = cs.find(code)
            if concept is not None and concept["code"] in codes:
                return self._found(path, role, cs, concept, code, found, st, exclude_inactive)
        return False

    def _abstract(self, path, cs: CodeSystemView, concept: dict, code: str, st: State) -> bool:
        if self.ctx.options.abstract_ok or not cs.is_abstract(concept):
            return False
        if not self.ctx.options.membership_only:
            st.issues.add("error", "business-rule", add_path(path, "code"),
                          "ABSTRACT_CODE_NOT_ALLOWED",
                          text("ABSTRACT_CODE_NOT_ALLOWED", cs.url, code), "code-rule")
        return True

    def _found(self, path, role, cs: CodeSystemView, concept: dict, code: str, found: Found,
               st: State, exclude_inactive: bool, normalise: bool = False) -> bool:
        """A code located in an include: abstract, inactive and activeOnly rules decide."""
        opts, reporting = self.ctx.options, role != "not in"
        if normalise and concept["code"] != code:
            ref = f"{cs.url}|{cs.version}" if cs.version else cs.url
            st.issues.add("information", "business-rule", add_path(path, "code"),
                          "CODE_CASE_DIFFERENCE",
                          text("CODE_CASE_DIFFERENCE", code, concept["code"], ref), "code-rule")
            st.normal_form = concept["code"]
        found.displays.add_concept(cs, concept)
        if self._abstract(path, cs, concept, code, st) if reporting else (
                not opts.abstract_ok and cs.is_abstract(concept)):
            return False
        inactive = cs.is_inactive(concept)
        if (exclude_inactive or opts.active_only) and inactive:
            if reporting:
                msg = text("STATUS_CODE_WARNING_CODE", "not active", code)
                st.issues.add("error", "business-rule", add_path(path, "code"),
                              "STATUS_CODE_WARNING_CODE", msg, "code-rule")
                st.messages.append(msg)
                st.inactive, st.inactive_path, st.inactive_code = True, path, code
                st.status = cs.status(concept)
            return False
        if reporting:
            st.see_status(cs, concept, path, code)
        return True
