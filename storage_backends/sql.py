"""SQL text shared by the SQL engines, generated from table descriptions."""

from __future__ import annotations

from vitalflow.tables import Table


def create_table(table: Table, qualified_name: str | None = None) -> str:
    columns = ",\n  ".join(
        f"{c.name} {c.sql_type}{'' if c.nullable else ' NOT NULL'}" for c in table.columns)
    key = ", ".join(table.primary_key)
    return (f"CREATE TABLE IF NOT EXISTS {qualified_name or table.qualified_name} (\n  {columns},\n"
            f"  PRIMARY KEY ({key})\n)")


def comment_statements(table: Table) -> list[str]:
    """COMMENT ON statements so the description is visible in any SQL client."""
    def quote(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    statements = [f"COMMENT ON TABLE {table.qualified_name} IS {quote(table.description)}"]
    for c in table.columns:
        unit = f" [{c.unit}]" if c.unit else ""
        statements.append(f"COMMENT ON COLUMN {table.qualified_name}.{c.name} IS "
                          f"{quote(c.description + unit)}")
    return statements
