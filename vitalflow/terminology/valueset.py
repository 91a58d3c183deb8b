"""ValueSet semantics: compose (include, exclude, filters, imports) evaluated to concept entries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vitalflow.terminology.codesystem import CodeSystemView
from vitalflow.terminology.fhir import FhirError, issue
from vitalflow.terminology.registry import Registry, split_canonical


@dataclass
class VersionRules:
    """The request's system-version (default), check-system-version and force-system-version."""

    default: dict[str, str] = field(default_factory=dict)
    check: dict[str, str] = field(default_factory=dict)
    force: dict[str, str] = field(default_factory=dict)


@dataclass
class Entry:
    system: str
    version: str | None
    code: str
    display: str | None
    concept: dict | None
    cs: CodeSystemView | None


@dataclass
class Expansion:
    entries: list[Entry] = field(default_factory=list)
    missing: list[tuple[str, str | None]] = field(default_factory=list)  # unknown (system, version)


class ValueSetEngine:
    """Expands ValueSets against a Registry; detects circular imports and unknown systems."""

    def __init__(self, registry: Registry, rules: VersionRules | None = None):
        self.registry = registry
        self.rules = rules or VersionRules()
        self._stack: list[str] = []

    def resolve(self, url: str, version: str | None = None) -> dict:
        vs = self.registry.get("ValueSet", url, version)
        if vs is None:
            base, inline = split_canonical(url)
            shown = f"{base}|{version or inline}" if (version or inline) else base
            raise FhirError(404, [issue("error", "not-found",
                                        f"A definition for the value Set '{shown}' could not be found",
                                        tx_type="not-found",
                                        message_id="Unable_to_resolve_value_Set_")])
        return vs

    def include_version(self, system: str, asked: str | None) -> str | None:
        """Version an include resolves to, after force/default rules."""
        if system in self.rules.force:
            return self.rules.force[system]
        if asked:
            return asked
        return self.rules.default.get(system)

    def expand(self, vs: dict) -> Expansion:
        key = f"{vs.get('url')}|{vs.get('version')}"
        if key in self._stack:
            raise FhirError(400, [issue("error", "processing",
                                        f"Circular reference detected in value set {vs.get('url')}",
                                        tx_type="vs-invalid",
                                        message_id="VALUESET_CIRCULAR_REFERENCE")])
        self._stack.append(key)
        try:
            out = Expansion()
            if "compose" not in vs and "expansion" in vs:
                for c in _flatten_contains(vs["expansion"].get("contains", [])):
                    out.entries.append(Entry(c.get("system", ""), c.get("version"), c["code"],
                                             c.get("display"), None, None))
                return out
            compose = vs.get("compose", {}) or {}
            for inc in compose.get("include", []) or []:
                self._include(inc, out, add=True)
            for exc in compose.get("exclude", []) or []:
                self._include(exc, out, add=False)
            return out
        finally:
            self._stack.pop()

    def _include(self, inc: dict, out: Expansion, add: bool) -> None:
        entries: list[Entry] | None = None
        system = inc.get("system")
        if system:
            asked = inc.get("version")
            version = self.include_version(system, asked)
            entries = self._system_entries(inc, system, version, out, add)
        for ref in inc.get("valueSet", []) or []:
            sub = self.expand(self.resolve(ref))
            out.missing.extend(m for m in sub.missing if m not in out.missing)
            keys = {(e.system, e.code) for e in sub.entries}
            if entries is None:
                entries = list(sub.entries)
            else:
                entries = [e for e in entries if (e.system, e.code) in keys]
        entries = entries or []
        if add:
            have = {(e.system, e.code) for e in out.entries}
            for e in entries:
                if (e.system, e.code) not in have:
                    out.entries.append(e)
                    have.add((e.system, e.code))
        else:
            drop = {(e.system, e.code) for e in entries}
            out.entries = [e for e in out.entries if (e.system, e.code) not in drop]

    def _system_entries(self, inc: dict, system: str, version: str | None, out: Expansion,
                        add: bool) -> list[Entry] | None:
        cs = self.registry.codesystem(system, version)
        if cs is None:
            if add and (system, version) not in out.missing:
                out.missing.append((system, version))
            # Without the code system an enumerated include still names its codes.
            return [Entry(system, version, c["code"], c.get("display"), None, None)
                    for c in inc.get("concept", []) or []]
        if inc.get("concept"):
            result = []
            for c in inc["concept"]:
                concept, _ = cs.find(c["code"])
                if concept is not None:
                    result.append(Entry(system, cs.version, concept["code"],
                                        concept.get("display"), concept, cs))
                elif cs.content != "complete":
                    result.append(Entry(system, cs.version, c["code"], c.get("display"), None,
                                        cs))
            codes = {e.code for e in result}
        else:
            codes = set(cs.concepts)
            result = None
        for i, flt in enumerate(inc.get("filter", []) or []):
            codes &= self._filter(cs, flt, i)
        if result is not None:
            return [e for e in result if e.code in codes]
        return [Entry(system, cs.version, code, cs.concepts[code].get("display"),
                      cs.concepts[code], cs) for code in cs.concepts if code in codes]

    def _filter(self, cs: CodeSystemView, flt: dict, index: int) -> set[str]:
        prop, op, value = flt.get("property"), flt.get("op"), flt.get("value")
        if value is None and op != "exists":
            raise FhirError(400, [issue(
                "error", "invalid",
                f"The system {cs.url} filter with property = {prop}, op = {op} has no value",
                tx_type="vs-invalid", message_id="UNABLE_TO_HANDLE_SYSTEM_FILTER_WITH_NO_VALUE",
                expression=f"ValueSet.compose.include[0].filter[{index}]")])
        allc = set(cs.concepts)
        if prop in ("concept", "code"):
            if op == "is-a":
                return ({value} | cs.descendants(value)) & allc
            if op in ("descendent-of", "descendant-of"):
                return cs.descendants(value)
            if op == "is-not-a":
                return allc - ({value} | cs.descendants(value))
            if op == "generalizes":
                return ({value} | cs.ancestors(value)) & allc
            if op == "child-of":
                return set(cs.children.get(value, []))
            if op == "descendent-leaf":
                return {c for c in cs.descendants(value) if not cs.children.get(c)}
            if op == "in":
                return {v.strip() for v in value.split(",")} & allc
            if op == "not-in":
                return allc - {v.strip() for v in value.split(",")}
            if op == "=":
                return {value} & allc
            if op == "regex":
                return {c for c in allc if _regex(value, c)}
        if prop == "display" and op in ("=", "regex"):
            return {c for c, con in cs.concepts.items()
                    if (con.get("display") == value if op == "=" else
                        _regex(value, con.get("display") or ""))}
        result = set()
        for code, concept in cs.concepts.items():
            values = [str(v).lower() if isinstance(v, bool) else str(v)
                      for v in cs.props(concept, prop)]
            if prop == "status" and not values and cs.status(concept):
                values = [cs.status(concept)]
            # Boolean property values only match their lexical form ("true"), not "TRUE".
            if op == "=" and value in values or op == "in" and set(values) & {v.strip() for v in value.split(",")} or op == "not-in" and not set(values) & {v.strip() for v in value.split(",")} or op == "regex" and any(_regex(value, v) for v in values) or op == "exists" and bool(values) == (str(value).lower() != "false"):
                result.add(code)
        return result


# Value sets come from requests (tx-resource), so a filter regex is untrusted input: use the
# `regex` module's timeout when installed, else refuse nested quantifiers (catastrophic cases).
try:
    import regex as _safe_re
except ImportError:  # pragma: no cover - depends on the environment
    _safe_re = None
_NESTED = re.compile(r"\([^()]*[+*}]\)[+*{]")


def _regex(pattern: str, text: str) -> bool:
    def refuse(reason: str) -> FhirError:
        return FhirError(400, [issue("error", "invalid",
                                     f"The regex '{pattern}' could not be executed ({reason})",
                                     tx_type="vs-invalid")])
    try:
        if _safe_re is not None:
            return _safe_re.fullmatch(pattern, text, timeout=0.25) is not None
        if _NESTED.search(pattern):
            raise refuse("nested quantifiers")
        return re.fullmatch(pattern, text) is not None
    except TimeoutError as exc:
        raise refuse("time limit exceeded") from exc
    except (re.error, getattr(_safe_re, "error", re.error)) as exc:
        raise refuse(str(exc)) from exc


def _flatten_contains(items: list[dict]) -> list[dict]:
    out = []
    for c in items or []:
        if c.get("code"):
            out.append(c)
        out.extend(_flatten_contains(c.get("contains", [])))
    return out
