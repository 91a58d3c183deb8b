"""What a query may do: one SELECT over known tables, read-only, checked with sqlglot before any
engine sees it (the engines are locked down too, as defence in depth)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from vitalflow.sql.catalog import ENTRIES, RESTRICTED_LAYERS, readable

READ_ONLY = "this interface runs read-only queries: one SELECT (or WITH … SELECT)"
# First keyword -> what it is, for a message that names the refused kind of statement.
_KINDS = {
    **dict.fromkeys(("INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "TRUNCATE"),
                    "DML ({kw}) changes data"),
    **dict.fromkeys(("CREATE", "DROP", "ALTER", "COMMENT", "GRANT", "REVOKE", "RENAME"),
                    "DDL ({kw}) changes the schema"),
    "COPY": "COPY reads or writes files", "EXPORT": "EXPORT writes files",
    "IMPORT": "IMPORT reads files", "ATTACH": "ATTACH opens other databases",
    "DETACH": "DETACH changes the attached databases", "USE": "USE changes the session",
    "INSTALL": "INSTALL fetches extensions", "LOAD": "LOAD loads extensions",
    "FORCE": "FORCE INSTALL fetches extensions", "SET": "SET changes engine options",
    "RESET": "RESET changes engine options", "PRAGMA": "PRAGMA reads or changes engine state",
    "CALL": "CALL runs procedures", "EXECUTE": "EXECUTE runs prepared statements",
    "PREPARE": "PREPARE defines statements", "VACUUM": "VACUUM changes storage",
    "CHECKPOINT": "CHECKPOINT changes storage", "ANALYZE": "ANALYZE changes statistics",
    "BEGIN": "transactions are not needed for reading", "COMMIT": "transactions are not "
    "needed for reading", "ROLLBACK": "transactions are not needed for reading",
    "SHOW": "SHOW lists engine objects (use the table list beside the editor)",
    "DESCRIBE": "DESCRIBE lists engine objects (use the table list beside the editor)",
    "SUMMARIZE": "SUMMARIZE is DuckDB-only", "EXPLAIN": "EXPLAIN is not offered",
    "INTO": "SELECT … INTO creates a table",
}
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter,
           exp.Copy, exp.Command, exp.Set, exp.Pragma, exp.TruncateTable, exp.Attach,
           exp.Detach, exp.Install, exp.Use, exp.Describe, exp.Show, exp.Transaction,
           exp.Commit, exp.Rollback, exp.Into)
# Functions that read files, other databases or the network, run SQL given as text, or reveal
# the engine's configuration.
_FORBIDDEN_FUNCTION = re.compile(
    r"(read_\w+|\w*_scan|scan_\w+|glob|sniff_csv|parquet_\w+|iceberg_\w+|delta_\w+|"
    r"postgres_\w+|pg_\w+|mysql_\w+|sqlite_\w+|duckdb_\w+|pragma_\w+|http\w*|getenv|"
    r"current_setting|query|query_table|load_\w+|ducklake_\w+|which_secret|\w*execute\w*|"
    r"system|shell|set_\w+|from_\w+_file|\w+_file)")
HIDDEN_COUNT = "_vf_cell_count"


class QueryRefused(PermissionError):
    """The query is not allowed here; the message says why (safe to show to the user)."""


class QueryInvalid(ValueError):
    """The query could not be read as SQL of the chosen dialect."""


@dataclass
class Checked:
    """A query that passed the policy: its tree, the tables it reads, its count columns."""

    tree: exp.Query
    tables: frozenset[str]
    dialect: str

    def render(self, engine_dialect: str, limit: int, catalogs: dict[str, str] | None = None,
               hidden_count: bool = False) -> str:
        """The query for an engine: tables qualified with the engine's catalog (layer ->
        catalog), at most limit rows, optionally with a hidden per-group count."""
        tree = self.tree.copy()
        for table in _real_tables(tree):
            if catalogs:
                table.set("catalog", exp.to_identifier(catalogs[table.db]))
        if hidden_count and isinstance(tree, exp.Select):
            tree = tree.select(exp.alias_(exp.Count(this=exp.Star()), HIDDEN_COUNT),
                               copy=False)
        existing = tree.args.get("limit")
        current = _literal_int(existing.expression) if isinstance(existing, exp.Limit) else None
        tree.set("limit", exp.Limit(expression=exp.Literal.number(
            min(limit, current) if current is not None else limit)))
        return tree.sql(dialect=engine_dialect)

    @property
    def aggregate(self) -> bool:
        """The outermost query groups or aggregates (what the small-cell rule looks at)."""
        outer = self.tree if isinstance(self.tree, exp.Select) else self.tree.find(exp.Select)
        return bool(outer and (outer.args.get("group")
                               or any(_is_aggregate(p) for p in outer.expressions)))

    @property
    def single_select(self) -> bool:
        return isinstance(self.tree, exp.Select)

    def count_columns(self) -> list[str]:
        """Output columns that are counts of persons or records: COUNT(...) or sums of the
        pre-aggregated `patients` column, by output name."""
        if not self.single_select:
            return []
        return [p.alias_or_name for p in self.tree.expressions
                if isinstance(p.unalias(), exp.Count)
                or any(c.name == "patients" for c in p.find_all(exp.Column))]


def check(sql: str, role: str, dialect: str = "trino") -> Checked:
    """The checked query, or QueryRefused / QueryInvalid with a message for the user."""
    allowed = readable(role)
    keyword = _first_keyword(sql)
    if keyword is None:
        raise QueryInvalid("the query is empty")
    if keyword not in ("SELECT", "WITH", "(", "FROM", "VALUES", "TABLE"):
        raise QueryRefused(f"refused: {_kind(keyword)}; {READ_ONLY}")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        raise QueryInvalid(f"could not read the query as {dialect} SQL: "
                           f"{str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise QueryRefused(f"refused: {len(statements)} statements; {READ_ONLY}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise QueryRefused(f"refused: {_kind(type(tree).__name__.upper())}; {READ_ONLY}")
    for node in tree.walk():
        if isinstance(node, _WRITES):
            raise QueryRefused(f"refused: {_kind(type(node).__name__.upper())}; {READ_ONLY}")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if _FORBIDDEN_FUNCTION.fullmatch(name):
                raise QueryRefused(f"refused: function {name}() reads files, other databases or "
                                   "engine settings; query the tables of the catalog instead")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    tables = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise QueryRefused("refused: table functions (reading files, URLs or other "
                               "databases) are not allowed; query the tables of the catalog")
        if not table.db and not table.catalog and table.name.lower() in ctes:
            continue
        tables.add(_allowed_table(table, allowed, role))
    return Checked(tree, frozenset(tables), dialect)


def _allowed_table(table: exp.Table, allowed: dict, role: str) -> str:
    name = f"{table.db}.{table.name}".lower() if table.db else table.name.lower()
    shown = ".".join(p for p in (table.catalog, table.db, table.name) if p)
    if table.catalog:
        raise QueryRefused(f"refused: {shown}: name tables as layer.table (e.g. "
                           "refined.observation), whatever engine holds them")
    if name in allowed:
        return name
    if name.split(".")[0] in RESTRICTED_LAYERS:
        raise QueryRefused(f"refused: {shown} is restricted: the {name.split('.')[0]} layer is "
                           "never readable through this interface")
    if name in ENTRIES:
        raise QueryRefused(f"refused: role {role} may not read {shown}; analysts read the "
                           "refined and derived layers only")
    raise QueryRefused(f"refused: unknown table {shown}; readable: {', '.join(sorted(allowed))}")


def _real_tables(tree: exp.Expression) -> list[exp.Table]:
    return [t for t in tree.find_all(exp.Table) if t.db]


def _kind(keyword: str) -> str:
    return _KINDS.get(keyword, "{kw} statements are not queries").format(kw=keyword)


def _first_keyword(sql: str) -> str | None:
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).strip()
    if not text:
        return None
    if text.startswith("("):
        return "("
    match = re.match(r"[A-Za-z_]+", text)
    return match.group(0).upper() if match else text[:1]


def _is_aggregate(node: exp.Expression) -> bool:
    return any(isinstance(n, exp.AggFunc) and not n.find_ancestor(exp.Window, exp.Subquery)
               for n in node.walk())


def _literal_int(node: exp.Expression | None) -> int | None:
    return int(node.this) if isinstance(node, exp.Literal) and node.is_int else None
