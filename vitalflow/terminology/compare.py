"""Compare a server's JSON response with a tx-ecosystem expected response (wildcards, any order)."""

from __future__ import annotations

import re
from typing import Any

_ANY = {"$id$", "$instant$", "$uuid$", "$string$", "$date$", "$version$", "$url$", "$token$",
        "$semver$", "$$"}


def _optional(marker: Any) -> bool:
    # The markers say when a property may be absent: always (true), unless the server is
    # tx.fhir.org ("!tx.fhir.org"), or in some FHIR version/mode; we are never tx.fhir.org.
    return marker is True or isinstance(marker, str)


def _string_ok(expected: str, actual: Any) -> bool:
    if expected in _ANY:
        return actual is not None
    m = re.fullmatch(r"\$external:\d+(?::(.*))?\$", expected, re.DOTALL)
    if m:
        return isinstance(actual, str) and (not m.group(1) or m.group(1) in actual)
    m = re.fullmatch(r"\$fragments:(.*)\$", expected, re.DOTALL)
    if m:
        return isinstance(actual, str) and all(f in actual for f in m.group(1).split("|") if f)
    m = re.fullmatch(r"\$choice:(.*)\$", expected, re.DOTALL)
    if m:
        return actual in m.group(1).split("|")
    return expected == actual


def compare(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Differences as readable strings; an empty list means the response conforms."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {type(actual).__name__}"]
        errors = []
        optional_props = set(expected.get("$optional-properties$", []) or [])
        for key, value in expected.items():
            if key.startswith("$") and key.endswith("$"):
                continue
            if key not in actual:
                if key not in optional_props:
                    errors.append(f"{path}.{key}: missing")
                continue
            errors.extend(compare(value, actual[key], f"{path}.{key}"))
        for key in actual:
            if key not in expected:
                errors.append(f"{path}.{key}: unexpected ({_short(actual[key])})")
        return errors
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected an array"]
        return _compare_unordered(expected, actual, path)
    if isinstance(expected, str):
        return [] if _string_ok(expected, actual) else [
            f"{path}: expected {_short(expected)}, got {_short(actual)}"]
    if expected != actual or type(expected) is not type(actual):
        return [f"{path}: expected {_short(expected)}, got {_short(actual)}"]
    return []


def _compare_unordered(expected: list, actual: list, path: str) -> list[str]:
    remaining = list(range(len(actual)))
    errors = []
    for i, item in enumerate(expected):
        optional = isinstance(item, dict) and _optional(item.get("$optional$", False))
        best: tuple[int, list[str]] | None = None
        for j in remaining:
            diff = compare(item, actual[j], f"{path}[{i}]")
            if not diff:
                best = (j, [])
                break
            if best is None or len(diff) < len(best[1]):
                best = (j, diff)
        if best is not None and not best[1]:
            remaining.remove(best[0])
        elif not optional:
            if best is None:
                errors.append(f"{path}[{i}]: missing {_short(item)}")
            else:
                errors.extend(best[1])
                remaining.remove(best[0])
    for j in remaining:
        errors.append(f"{path}: unexpected item {_short(actual[j])}")
    return errors


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
