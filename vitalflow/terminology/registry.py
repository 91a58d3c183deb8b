"""In-memory store of CodeSystem, ValueSet and ConceptMap resources, resolved by url and version."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vitalflow.terminology.codesystem import CodeSystemView

KINDS = ("CodeSystem", "ValueSet", "ConceptMap")


def version_key(version: str | None) -> tuple:
    """Sort key that orders 1.2.0 after 1.10.0's predecessors numerically, text otherwise."""
    parts = re.split(r"[.\-]", version or "")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def is_wildcard(version: str | None) -> bool:
    return bool(version) and any(seg in ("x", "X", "*") for seg in version.split("."))


def version_matches(pattern: str | None, version: str | None) -> bool:
    """True when `version` satisfies `pattern` (exact, or semver with x/* segments)."""
    if not pattern:
        return True
    if pattern == version:
        return True
    if not version or not is_wildcard(pattern):
        return False
    want, have = pattern.split("."), version.split(".")
    if len(want) != len(have):
        return False
    return all(w in ("x", "X", "*") or w == h for w, h in zip(want, have))


def split_canonical(url: str | None) -> tuple[str, str | None]:
    if url and "|" in url:
        base, version = url.split("|", 1)
        return base, version or None
    return url or "", None


class Registry:
    """Resources by type and url; later additions with the same url|version replace earlier ones."""

    def __init__(self, resources: Iterable[dict] = ()):
        self._by: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        # Every resource added, even one sharing url|version with another (maps are searched).
        self._list: dict[str, list[dict]] = {k: [] for k in KINDS}
        self._views: dict[tuple, CodeSystemView] = {}
        for r in resources:
            self.add(r)

    def add(self, resource: dict) -> None:
        kind = resource.get("resourceType")
        if kind == "Bundle":
            for entry in resource.get("entry", []) or []:
                if isinstance(entry.get("resource"), dict):
                    self.add(entry["resource"])
            return
        if kind not in KINDS or not resource.get("url"):
            return
        self._by[kind].setdefault(resource["url"], {})[resource.get("version") or ""] = resource
        self._list[kind].append(resource)

    def overlay(self, resources: Iterable[dict]) -> Registry:
        """A copy with extra resources on top (for tx-resource parameters); self is unchanged."""
        extra = list(resources)
        if not extra:
            return self
        copy = Registry()
        copy._by = {k: {u: dict(v) for u, v in d.items()} for k, d in self._by.items()}
        copy._views = dict(self._views)
        copy._list = {k: list(v) for k, v in self._list.items()}
        for r in extra:
            copy.add(r)
            if r.get("resourceType") == "CodeSystem":
                copy._views = {k: v for k, v in copy._views.items()
                               if k[0] not in (r.get("url"), split_canonical(
                                   r.get("supplements"))[0])}
        return copy

    @classmethod
    def from_directory(cls, folder: Path) -> Registry:
        reg = cls()
        for path in sorted(Path(folder).glob("**/*.json")):
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            for r in data if isinstance(data, list) else [data]:
                if isinstance(r, dict):
                    reg.add(r)
        return reg

    def versions(self, kind: str, url: str) -> list[str]:
        return sorted((v for v in self._by[kind].get(url, {}) if v), key=version_key)

    def get(self, kind: str, url: str, version: str | None = None) -> dict | None:
        """The resource at url (|version inside url allowed); latest matching version wins."""
        url, inline = split_canonical(url)
        version = version or inline
        found = self._by[kind].get(url)
        if not found:
            return None
        if version:
            if version in found:
                return found[version]
            matching = [v for v in found if v and version_matches(version, v)]
            return found[max(matching, key=version_key)] if matching else None
        return found[max(found, key=version_key)]

    def codesystem(self, url: str, version: str | None = None,
                   supplements: set[str] | None = None) -> CodeSystemView | None:
        """The code system merged with its supplements: all of them, or only those named."""
        resource = self.get("CodeSystem", url, version)
        if resource is None or resource.get("content") == "supplement":
            return None
        chosen = [s for vs in self._by["CodeSystem"].values() for s in vs.values()
                  if s.get("content") == "supplement"
                  and split_canonical(s.get("supplements"))[0] == resource["url"]
                  and (supplements is None or s["url"] in supplements
                       or f"{s['url']}|{s.get('version')}" in supplements)]
        key = (resource["url"], resource.get("version") or "",
               tuple(sorted(f"{s['url']}|{s.get('version')}" for s in chosen)))
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = CodeSystemView(resource, chosen)
        return view

    def supplement(self, url: str) -> dict | None:
        r = self.get("CodeSystem", url)
        return r if r and r.get("content") == "supplement" else None

    def all(self, kind: str) -> list[dict]:
        return list(self._list[kind])
