"""A CodeSystem indexed for lookups: concepts by code, hierarchy, properties, status."""

from __future__ import annotations

from typing import Any

INACTIVE_STATUSES = {"retired", "inactive"}
STANDARDS_STATUS = "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status"


class CodeSystemView:
    """Read-only index over one CodeSystem resource (plus any supplements of it)."""

    def __init__(self, resource: dict, supplements: list[dict] | None = None):
        self.resource = resource
        self.url: str = resource["url"]
        self.version: str | None = resource.get("version")
        self.content: str = resource.get("content", "complete")
        self.case_sensitive: bool = resource.get("caseSensitive", True) is not False
        self.language: str | None = resource.get("language")
        self.concepts: dict[str, dict] = {}
        self.parents: dict[str, list[str]] = {}
        self.children: dict[str, list[str]] = {}
        self._lower: dict[str, str] = {}
        self.supplements = supplements or []
        self._index(resource.get("concept", []) or [], None)
        for concept in list(self.concepts.values()):
            for prop in concept.get("property", []) or []:
                if prop.get("code") in ("parent", "subsumedBy") and "valueCode" in prop:
                    self._link(prop["valueCode"], concept["code"])
        for sup in self.supplements:
            self._apply_supplement(sup)

    def _link(self, parent: str, child: str) -> None:
        if child not in self.parents.setdefault(parent, []) and parent != child:
            self.children.setdefault(parent, []).append(child)
            self.parents.setdefault(child, []).append(parent)

    def _index(self, concepts: list[dict], parent: str | None) -> None:
        for c in concepts:
            code = c.get("code")
            if code is None:
                continue
            self.concepts[code] = c
            self._lower.setdefault(code.lower(), code)
            if parent is not None:
                self._link(parent, code)
            self._index(c.get("concept", []) or [], code)

    def _apply_supplement(self, sup: dict) -> None:
        def walk(items: list[dict]) -> None:
            for c in items:
                target = self.concepts.get(c.get("code"))
                if target is not None:
                    merged = dict(target)
                    merged["designation"] = list(target.get("designation", []) or []) + list(
                        c.get("designation", []) or [])
                    merged["property"] = list(target.get("property", []) or []) + list(
                        c.get("property", []) or [])
                    self.concepts[c["code"]] = merged
                walk(c.get("concept", []) or [])
        walk(sup.get("concept", []) or [])

    def has_supplement(self, url: str) -> bool:
        """Whether a supplement (url or url|version) is merged into this view."""
        return any(url in (s.get("url"), f"{s.get('url')}|{s.get('version')}")
                   for s in self.supplements)

    def find(self, code: str) -> tuple[dict | None, bool]:
        """(concept, matched only by case) for a code; case-insensitive systems fold case."""
        concept = self.concepts.get(code)
        if concept is not None:
            return concept, False
        if not self.case_sensitive:
            real = self._lower.get(code.lower())
            if real is not None:
                return self.concepts[real], True
        return None, False

    def prop(self, concept: dict, name: str) -> Any:
        for p in concept.get("property", []) or []:
            if p.get("code") == name:
                for key, value in p.items():
                    if key.startswith("value"):
                        return value
        return None

    def props(self, concept: dict, name: str) -> list:
        return [v for p in concept.get("property", []) or [] if p.get("code") == name
                for k, v in p.items() if k.startswith("value")]

    def status(self, concept: dict) -> str | None:
        status = self.prop(concept, "status") or next(
            (e.get("valueCode") for e in concept.get("extension", []) or []
             if e.get("url") == STANDARDS_STATUS), None)
        if status is None and self.prop(concept, "inactive") is True:
            return "inactive"
        return status

    def is_inactive(self, concept: dict) -> bool:
        return self.prop(concept, "inactive") is True or self.status(concept) in INACTIVE_STATUSES

    def is_abstract(self, concept: dict) -> bool:
        return self.prop(concept, "notSelectable") is True or self.prop(concept, "abstract") is True

    def descendants(self, code: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.children.get(code, []))
        while stack:
            c = stack.pop()
            if c not in seen:
                seen.add(c)
                stack.extend(self.children.get(c, []))
        return seen

    def ancestors(self, code: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.parents.get(code, []))
        while stack:
            c = stack.pop()
            if c not in seen:
                seen.add(c)
                stack.extend(self.parents.get(c, []))
        return seen

    def displays(self, concept: dict, languages: list[str] | None = None) -> list[str]:
        """Valid displays: the display plus designations (filtered by language when given)."""
        out = []
        if concept.get("display") and (not languages or _lang_ok(self.language or "en",
                                                                  languages)):
            out.append(concept["display"])
        for d in concept.get("designation", []) or []:
            if not d.get("value"):
                continue
            lang = d.get("language")
            if languages and not (lang and _lang_ok(lang, languages)):
                continue
            out.append(d["value"])
        return out


def _lang_ok(lang: str, wanted: list[str]) -> bool:
    lang = lang.lower()
    return any(lang == w.lower() or lang.split("-")[0] == w.lower().split("-")[0] for w in wanted)
