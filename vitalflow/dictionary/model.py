"""The dictionary as one JSON-able document with stable ids, and the rules every entry meets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitalflow import __version__
from vitalflow.reasons import DESCRIPTIONS, Filtered, Quarantine
from storage_backends.schema import NUMERIC_TYPES
from vitalflow.tables import DESCRIBED_TABLES, LAYERS, Column, Layer, Table

FORMAT = 1  # of the document below; a change that old readers would misread bumps it
QUARANTINE_TABLE = "refined.quarantine"


def tables() -> tuple[Table, ...]:
    """Every table vitalflow creates: tables.py, plus the identity tables of record merging."""
    from vitalflow.merge.store import TABLES as MERGE_TABLES

    return DESCRIBED_TABLES + MERGE_TABLES


def layer_of(table: Table) -> Layer:
    return next(layer for layer in LAYERS if layer.name == table.layer)


def column_id(table: Table, column: Column) -> str:
    """Stable id of a column: layer.table.column, never reused for another meaning."""
    return f"{table.qualified_name}.{column.name}"


@dataclass(frozen=True)
class Problem:
    """One gap in the dictionary or between it and a database."""

    table: str
    column: str | None
    what: str

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{where}: {self.what}"


def lint(described: tuple[Table, ...] | None = None) -> list[Problem]:
    """What the description itself lacks: description, owner, unit where numeric, PII class;
    and lineage or join references that name no described column."""
    described = tables() if described is None else described
    known = {column_id(t, c) for t in described for c in t.columns}
    problems = []
    for table in described:
        name = table.qualified_name
        if not table.description.strip():
            problems.append(Problem(name, None, "no description"))
        if not table.owner.strip():
            problems.append(Problem(name, None, "no owner flow"))
        if table.layer not in {layer.name for layer in LAYERS}:
            problems.append(Problem(name, None, f"layer {table.layer!r} is not in tables.LAYERS"))
        if table.freshness and table.freshness not in table.column_names:
            problems.append(Problem(name, None, f"freshness column {table.freshness} is unknown"))
        for column in table.columns:
            def problem(what: str, column: Column = column) -> None:
                problems.append(Problem(name, column.name, what))
            if not column.description.strip():
                problem("no description")
            if column.type in NUMERIC_TYPES and not column.unit:
                problem(f"numeric ({column.type}) without a unit")
            if column.pii is None:
                problem("no PII class")
            for ref in (*column.upstream, *filter(None, [column.references])):
                if ref not in known:
                    problem(f"lineage or reference {ref} names no described column")
    return problems


def as_dict(whitelist: Path | None = None) -> dict[str, Any]:
    """The whole dictionary as JSON-able data (stable order, stable ids). whitelist: the rules
    file whose rules become filter reasons (default: the configured one)."""
    described = tables()
    referenced_by: dict[str, list[str]] = {}
    feeds: dict[str, list[str]] = {}
    for table in described:
        for column in table.columns:
            if column.references:
                referenced_by.setdefault(column.references, []).append(column_id(table, column))
            for source in column.upstream:
                feeds.setdefault(source, []).append(column_id(table, column))
    return {
        "name": "vitalflow", "version": __version__, "format": FORMAT,
        "layers": [{"id": layer.name, "name": layer.name, "description": layer.description,
                    "access": layer.access, "restricted": layer.restricted,
                    "tables": [t.qualified_name for t in described if t.layer == layer.name]}
                   for layer in LAYERS],
        "tables": [_table(t, referenced_by, feeds) for t in described],
        "reasons": reasons(whitelist),
    }


def _table(table: Table, referenced_by: dict, feeds: dict) -> dict[str, Any]:
    layer = layer_of(table)
    entry = {"id": table.qualified_name, "layer": table.layer, "name": table.name,
             "description": table.description, "owner": table.owner, "access": layer.access,
             "restricted": layer.restricted}
    if layer.restricted:  # listed with its access rules only
        return entry
    upstream = sorted({ref.rsplit(".", 1)[0] for c in table.columns for ref in c.upstream}
                      - {table.qualified_name})
    return entry | {
        "primary_key": list(table.primary_key), "freshness": table.freshness,
        "upstream_tables": upstream,
        "columns": [{
            "id": column_id(table, c), "name": c.name, "type": c.type, "sql_type": c.sql_type,
            "nullable": c.nullable, "primary_key": c.name in table.primary_key,
            "unit": c.unit, "description": c.description, "comment": c.comment,
            "pii": c.pii.value if c.pii else None, "fhir_source": c.fhir_source,
            "binding": c.binding, "upstream": list(c.upstream), "references": c.references,
            "referenced_by": referenced_by.get(column_id(table, c), []),
            "feeds": feeds.get(column_id(table, c), []),
        } for c in table.columns],
    }


def reasons(whitelist: Path | None = None) -> list[dict[str, Any]]:
    """Every quarantine and filter reason code, and one filter reason per whitelist rule."""
    found = [{"id": str(code), "code": str(code), "kind": "quarantine",
              "description": DESCRIPTIONS[code], "table": QUARANTINE_TABLE} for code in Quarantine]
    found += [{"id": str(code), "code": str(code), "kind": "filter",
               "description": DESCRIPTIONS[code], "table": None} for code in Filtered]
    return found + _whitelist_reasons(whitelist)


def _whitelist_reasons(path: Path | None) -> list[dict[str, Any]]:
    from vitalflow.refine.whitelist import WhitelistError, load_whitelist

    if path is None:
        from vitalflow.config import load_settings

        path = load_settings().filter.path
    try:
        rules = load_whitelist(path)
    except WhitelistError:
        return []  # `vitalflow filter --dry-run` and refine report the file's problem
    return [{"id": f"whitelist:{c.rule.name}", "code": f"whitelist:{c.rule.name}",
             "kind": "whitelist", "description": c.rule.description or _criterion(c.rule),
             "table": None, "rule": c.rule.model_dump(by_alias=True, exclude_none=True,
                                                      mode="json")}
            for c in rules.criteria]


def _criterion(rule) -> str:
    """A rule in words, for rules without a description of their own."""
    applies = f"{', '.join(rule.resource)} records" if rule.resource else "Every record"
    if rule.in_ is not None:
        test = f"{rule.field} is one of {', '.join(map(str, rule.in_))}"
    elif rule.in_valueset:
        test = f"{rule.field} is in the value set {rule.in_valueset}"
    else:
        bounds = [f"at least {rule.min}" if rule.min is not None else "",
                  f"at most {rule.max}" if rule.max is not None else ""]
        test = f"{rule.field} is {' and '.join(b for b in bounds if b)}"
    missing = "pass" if rule.missing == "pass" else "fail"
    return f"{applies} must meet: {test}; records without {rule.field} {missing}."
