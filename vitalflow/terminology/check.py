"""The domain entry point for refine: check distinct codings (and units) against the server."""

from __future__ import annotations

import pyarrow as pa

from vitalflow.terminology.client import (
    Call,
    TerminologyClient,
    TerminologyError,
    TerminologyUnavailable,
)
from vitalflow.terminology.fhir import params_to_multi
from vitalflow.terminology.settings import UCUM, TerminologySettings

OUTCOMES = ("valid", "mapped", "invalid", "pending")
RESULT_SCHEMA = pa.schema([
    ("system", pa.string()), ("code", pa.string()), ("unit", pa.string()),
    ("outcome", pa.string()), ("target_system", pa.string()), ("target_code", pa.string()),
    ("code_system_version", pa.string()), ("equivalence", pa.string()),
    ("message", pa.string()), ("unit_valid", pa.bool_())])
# Mappings that do not say "this target means the source" are not usable translations.
_UNUSABLE = {"unmatched", "disjoint", "not-related-to"}
_PREFERENCE = ["equal", "equivalent", "wider", "subsumes", "narrower", "specializes",
               "relatedto", "inexact", "related-to"]


def _first(p: dict, name: str):
    values = p.get(name) or []
    return values[0] if values else None


def _vs_call(settings: TerminologySettings, system: str, code: str,
             version: str | None = None) -> Call:
    return Call("vs-validate-code", system=system, code=code, version=version,
                url=settings.value_set)


def _unit_call(settings: TerminologySettings, unit: str) -> Call:
    if settings.unit_value_set:
        return Call("vs-validate-code", system=UCUM, code=unit, url=settings.unit_value_set)
    return Call("cs-validate-code", system=UCUM, code=unit)


def _validity(answer) -> tuple[str, str | None, str | None]:
    """(valid|invalid|pending, version, message) of a $validate-code answer or exception."""
    if isinstance(answer, TerminologyUnavailable):
        return "pending", None, str(answer)
    if isinstance(answer, TerminologyError):
        return "invalid", None, str(answer)
    p = params_to_multi(answer)
    ok = _first(p, "result") is True
    return ("valid" if ok else "invalid"), _first(p, "version"), (
        None if ok else _first(p, "message") or "not valid")


def _best_match(answer) -> tuple[dict | None, str | None]:
    p = params_to_multi(answer)
    best, best_rank = None, len(_PREFERENCE) + 1
    for match in p.get("match", []):
        parts = params_to_multi({"parameter": match.get("part", [])})
        eq = _first(parts, "equivalence") or _first(parts, "relationship")
        concept = _first(parts, "concept")
        if not concept or eq in _UNUSABLE:
            continue
        rank = _PREFERENCE.index(eq) if eq in _PREFERENCE else len(_PREFERENCE)
        if rank < best_rank:
            best, best_rank = (concept, eq), rank
    return best if best else (None, None)


def check_codings(codings: pa.Table, client: TerminologyClient,
                  settings: TerminologySettings | None = None) -> pa.Table:
    """One row per distinct (system, code, unit) of `codings` with its terminology outcome.

    `codings` has string columns system, code and unit (unit may be null or absent). Outcomes:
    valid (code in settings.value_set), mapped (translated to settings.target_system through one
    of settings.concept_maps, target in the value set), invalid (message says why; also when
    the unit is not valid UCUM), pending (server unavailable: keep the record and retry later).
    """
    s = settings or client.settings
    cols = set(codings.column_names)
    n = codings.num_rows
    unit_col = codings.column("unit").to_pylist() if "unit" in cols else [None] * n
    rows = list(dict.fromkeys(zip(codings.column("system").to_pylist(),
                                  codings.column("code").to_pylist(), unit_col)))
    keys = list(dict.fromkeys((sys_, code) for sys_, code, _ in rows))
    units = sorted({u for _, _, u in rows if u})

    first: list[Call] = [_unit_call(s, u) for u in units]
    for system, code in keys:
        if not system or not code:
            continue
        if system == s.target_system:
            first.append(_vs_call(s, system, code))
        else:
            first += [Call("translate", system=system, code=code, url=cm, target=s.target_system)
                      for cm in s.concept_maps]
    answers = client.call_many(first)

    # Translated targets are validated in a second round (usually one batch, mostly cached).
    mapped: dict[tuple, tuple] = {}
    second: list[Call] = []
    for system, code in keys:
        if not system or not code or system == s.target_system:
            continue
        pending_msg, found = None, None
        for cm in s.concept_maps:
            ans = answers[Call("translate", system=system, code=code, url=cm,
                               target=s.target_system)]
            if isinstance(ans, TerminologyUnavailable):
                pending_msg = str(ans)
                continue
            if isinstance(ans, TerminologyError):
                continue
            concept, eq = _best_match(ans)
            if concept is not None:
                found = (concept, eq)
                break
        mapped[(system, code)] = ("pending", pending_msg) if found is None and pending_msg \
            else ("found", found)
        if found is not None:
            second.append(_vs_call(s, found[0].get("system") or s.target_system,
                                   found[0]["code"]))
    answers.update(client.call_many(second))

    per_code: dict[tuple, dict] = {}
    for system, code in keys:
        r = {"outcome": "invalid", "target_system": None, "target_code": None,
             "code_system_version": None, "equivalence": None, "message": None}
        if not system or not code:
            r["message"] = "coding has no system or no code"
        elif system == s.target_system:
            state, version, msg = _validity(answers[_vs_call(s, system, code)])
            r.update(outcome=state, message=msg, code_system_version=version)
            if state == "valid":
                r.update(target_system=system, target_code=code)
        else:
            kind, info = mapped[(system, code)]
            if kind == "pending":
                r.update(outcome="pending", message=info)
            elif info is None:
                r["message"] = (f"no mapping to {s.target_system} for this code in "
                                f"{', '.join(s.concept_maps) or 'any configured ConceptMap'}")
            else:
                concept, eq = info
                tsys = concept.get("system") or s.target_system
                state, version, msg = _validity(answers[_vs_call(s, tsys, concept["code"])])
                r.update(outcome="mapped" if state == "valid" else state, message=msg,
                         code_system_version=version, equivalence=eq,
                         target_system=tsys, target_code=concept["code"])
        per_code[(system, code)] = r

    out = {name: [] for name in RESULT_SCHEMA.names}
    for system, code, unit in rows:
        r = dict(per_code[(system, code)])
        unit_valid = None
        if unit:
            state, _, msg = _validity(answers[_unit_call(s, unit)])
            unit_valid = None if state == "pending" else state == "valid"
            if state == "pending" and r["outcome"] != "invalid":
                r.update(outcome="pending", message=msg)
            elif state == "invalid" and r["outcome"] in ("valid", "mapped"):
                r.update(outcome="invalid", message=f"unit '{unit}' is not valid UCUM: {msg}")
        for name, value in (("system", system), ("code", code), ("unit", unit),
                            ("unit_valid", unit_valid)):
            out[name].append(value)
        for name in ("outcome", "target_system", "target_code", "code_system_version",
                     "equivalence", "message"):
            out[name].append(r[name])
    return pa.table(out, schema=RESULT_SCHEMA)


def outcome_counts(result: pa.Table) -> dict[str, int]:
    """Counts per outcome, for the run summary."""
    counts = {o: 0 for o in OUTCOMES}
    for o in result.column("outcome").to_pylist():
        counts[o] = counts.get(o, 0) + 1
    return counts
