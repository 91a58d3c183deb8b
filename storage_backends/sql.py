"""SQL text shared by the SQL engines, generated from table descriptions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from storage_backends.base import Filter
from storage_backends.schema import Table


def create_table(table: Table, qualified_name: str | None = None,
                 type_of: Callable = lambda column: column.sql_type, primary_key: bool = True,
                 suffix: str = "", column_suffix: Callable = lambda column: "",
                 extra_columns: Sequence[str] = ()) -> str:
    """CREATE TABLE IF NOT EXISTS from the description; type_of maps a Column to the engine's
    type text, column_suffix to what follows it (e.g. a COMMENT clause); extra_columns are the
    engine's own bookkeeping columns, declared after the described ones."""
    columns = [f"{c.name} {type_of(c)}{'' if c.nullable else ' NOT NULL'}{column_suffix(c)}"
               for c in table.columns]
    columns.extend(extra_columns)
    if primary_key:
        columns.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    body = ",\n  ".join(columns)
    return (f"CREATE TABLE IF NOT EXISTS {qualified_name or table.qualified_name} (\n  {body}\n)"
            f"{suffix}")


def comment_statements(table: Table) -> list[str]:
    """COMMENT ON statements so the description is visible in any SQL client."""
    statements = [f"COMMENT ON TABLE {table.qualified_name} IS {quote(table.comment)}"]
    statements.extend(f"COMMENT ON COLUMN {table.qualified_name}.{c.name} IS {quote(c.comment)}"
                      for c in table.columns)
    return statements


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def where_clause(where: Sequence[Filter], placeholder: Callable[[Any], str] | None,
                 in_list: Callable[[str, list, bool], str],
                 column_placeholder: Callable[[str, Any], str] | None = None) -> str:
    """' WHERE …' for the filters ('' for none). placeholder(value) binds one value and returns
    its marker; in_list(column, values, negated) renders an (NOT) IN test in the engine's way.
    Engines whose markers name a type (ClickHouse's {p0:Int64}) pass column_placeholder(column,
    value) instead of placeholder."""
    if column_placeholder is None:
        column_placeholder = lambda column, value: placeholder(value)
    terms = []
    for column, op, value in where:
        if op == "is null":
            terms.append(f"{column} IS NULL")
        elif op == "is not null":
            terms.append(f"{column} IS NOT NULL")
        elif op in ("in", "not in"):
            terms.append(in_list(column, value, op == "not in") if value
                         else ("true" if op == "not in" else "false"))
        elif value is None:  # SQL's '= NULL' is never true; the caller meant 'is null'
            terms.append(f"{column} IS {'NOT ' if op == '!=' else ''}NULL")
        else:
            terms.append(f"{column} {'<>' if op == '!=' else op} "
                         f"{column_placeholder(column, value)}")
    return " WHERE " + " AND ".join(terms) if terms else ""
