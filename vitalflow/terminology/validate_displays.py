"""Designations of a concept and the display-language rules $validate-code applies to them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vitalflow.terminology.codesystem import CodeSystemView

STANDARDS_STATUS = "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status"
# Designation uses that count as a display (besides having no use at all).
_DISPLAY_USES = {("http://terminology.hl7.org/CodeSystem/hl7TermMaintInfra", "preferredForLanguage"),
                 ("http://snomed.info/sct", "900000000000548007"),
                 ("http://terminology.hl7.org/CodeSystem/designation-usage", "display")}
_SNOMED_SYNONYM = ("http://snomed.info/sct", "900000000000013009")


def parse_languages(header: str | None) -> list[str] | None:
    """Accept-Language style list, best quality first; None when nothing usable was given."""
    out = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        m = re.search(r"q=([0-9.]+)", params)
        if m:
            quality = float(m.group(1))
        if tag.strip() and quality > 0:
            out.append((-quality, i, tag.strip()))
    return [tag for _, _, tag in sorted(out)] or None


def _squash(s: str) -> str:
    return " ".join(s.split()).lower()


def _parts(tag: str) -> list[str]:
    return tag.lower().split("-")


def lang_matches(wanted: str, actual: str, depth: str) -> bool:
    """Whether a requested language covers a stated one: 'full', 'region' or 'lang' depth."""
    if wanted == "*":
        return True
    w, a = _parts(wanted), _parts(actual)
    if depth == "full":
        return w == a
    if depth == "region":
        return w[0] == a[0] and (len(w) < 2 or len(a) < 2 or w[1] == a[1])
    return w[0] == a[0]


@dataclass
class Designation:
    value: str
    language: str | None
    use: dict | None
    status: str = "active"
    is_display: bool = False

    def active(self) -> bool:
        return self.status not in ("withdrawn", "inactive", "retired", "deprecated")


class Designations:
    """The displays and designations known for one concept (code system, supplements, value set)."""

    def __init__(self) -> None:
        self.items: list[Designation] = []

    def add_concept(self, cs: CodeSystemView, concept: dict) -> None:
        if concept.get("display"):
            self.items.append(Designation(concept["display"], cs.language, None, "active", True))
        for d in concept.get("designation", []) or []:
            if d.get("value"):
                status = next((e.get("valueCode") for e in d.get("extension", []) or []
                               if e.get("url") == STANDARDS_STATUS), None) or "active"
                self.items.append(Designation(d["value"].strip(), d.get("language"), d.get("use"),
                                              status))

    def add_include_concept(self, include_concept: dict, vs_language: str | None) -> None:
        if include_concept.get("display"):
            self.items.append(Designation(include_concept["display"].strip(), vs_language, None,
                                          "active", True))
        for d in include_concept.get("designation", []) or []:
            if d.get("value"):
                self.items.append(Designation(d["value"].strip(), d.get("language"), d.get("use")))

    @staticmethod
    def displayish(d: Designation) -> bool:
        use = d.use
        return d.is_display or not use or (use.get("system"), use.get("code")) in _DISPLAY_USES

    def _preferred(self, d: Designation) -> bool:
        use = d.use
        return self.displayish(d) or (use.get("system"), use.get("code")) == _SNOMED_SYNONYM

    @staticmethod
    def _langs_match(langs: list[str] | None, stated: str | None, depth: str,
                     default: str | None) -> bool:
        if default and stated and _parts(stated)[0] == _parts(default)[0]:
            return True
        if not stated or not langs:
            return True
        return any(lang_matches(w, stated, depth) for w in langs)

    def has_display(self, langs, default, value: str, active: bool) -> tuple[bool, bool]:
        """(found ignoring case, differs only by whitespace) among the matching designations."""
        pool = [d for d in self.items if self._langs_match(langs, d.language, "lang", default)
                and (not active or d.active())]
        if any(d.value.lower() == value.lower() for d in pool):
            return True, False
        return False, any(_squash(d.value) == _squash(value) for d in pool)

    def count(self, langs, default, display_only: bool) -> int:
        for depth in ("full", "region", "lang"):
            n = sum(1 for d in self.items if (not display_only or self.displayish(d))
                    and self._langs_match(langs, d.language, depth, default))
            if n:
                return n
        return 0

    def present(self, langs, display_only: bool) -> str:
        def show(d: Designation) -> str:
            return f"'{d.value}' ({d.language})" if d.language else f"'{d.value}'"
        pool = [d for d in self.items if (not display_only or self.displayish(d))
                and self._langs_match(langs, d.language, "lang", None)]
        if not pool:
            pool = [d for d in self.items if not display_only or self.displayish(d)]
        shown = [show(d) for d in pool]
        return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1] \
            if shown else ""

    def preferred(self, langs: list[str] | None) -> str | None:
        if not self.items:
            return None
        if not langs:
            for test in (lambda d: self._preferred(d) and d.active(),
                         lambda d: self.displayish(d) and d.active(),
                         self.displayish, self._preferred):
                found = next((d for d in self.items if test(d)), None)
                if found:
                    return found.value
            return self.items[0].value
        for wanted in langs:
            for active_only in (True, False):
                for depth in ("full", "region", "lang"):
                    for test in (self._preferred, self.displayish, lambda d: True):
                        for d in self.items:
                            if d.language and lang_matches(wanted, d.language, depth) and \
                                    test(d) and (not active_only or d.active()):
                                return d.value
        return next((d.value for d in self.items if not d.language and self.displayish(d)),
                    None)

    def allowed(self) -> list[str]:
        out: list[str] = []
        for d in self.items:
            if d.active() and self.displayish(d) and d.value not in out:
                out.append(d.value)
        return out

    def status_of(self, value: str) -> str:
        return next((d.status for d in self.items if d.value == value), "")
