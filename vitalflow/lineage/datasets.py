"""OpenLineage dataset names from where each layer really lives (no secrets), and the schema and
column lineage of each table, read from its description in vitalflow/tables.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from storage_backends.schema import Table
from vitalflow.tables import DERIVED_TABLES, RAW_TABLES, REFINED_TABLES

if TYPE_CHECKING:
    from vitalflow.storage import Layers


@dataclass(frozen=True)
class Dataset:
    namespace: str
    name: str
    table: Table | None  # None: an input file, outside the described tables


def location(url: str, table: Table, database_prefix: str = "") -> tuple[str, str]:
    """(namespace, name) of a table in the backend at url: PostgreSQL postgresql://host:port/db
    + schema.table, Iceberg the table location on the object store, ClickHouse host + db.table."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # user and password never leave
    scheme = parts.scheme
    if scheme.startswith("iceberg+"):
        warehouse = parse_qs(parts.query).get("warehouse", [""])[0].rstrip("/")
        where = urlsplit(warehouse)
        # pyiceberg's SQL catalog puts a table at <warehouse>/<namespace>.db/<table>
        return (f"{where.scheme}://{where.netloc}",
                f"{where.path.lstrip('/')}/{table.layer}.db/{table.name}".lstrip("/"))
    if scheme in ("clickhouse", "clickhouses", "chdb"):
        where = host if host else parts.path
        return f"{scheme}://{where}", f"{database_prefix}{table.layer}.{table.name}"
    if scheme in ("postgresql", "postgres"):
        return f"postgresql://{host}{parts.path}", table.qualified_name
    return f"{scheme}://{host}{parts.path}", table.qualified_name


def layer_datasets(layers: Layers) -> dict[str, Dataset]:
    """Every raw, refined and derived table as a dataset, by its qualified name."""
    found: dict[str, Dataset] = {}
    raw_root = getattr(layers.raw, "root", None)
    for table in RAW_TABLES:
        if raw_root is not None:  # Parquet files: the folder of the raw layer
            found[table.qualified_name] = Dataset(
                "file", str(Path(raw_root).resolve() / table.name), table)
        else:
            found[table.qualified_name] = Dataset(*location(layers.raw.backend.url, table), table)
    for tables, backend in ((REFINED_TABLES, layers.refined), (DERIVED_TABLES, layers.derived)):
        prefix = getattr(backend, "database_prefix", "")
        for table in tables:
            found[table.qualified_name] = Dataset(*location(backend.url, table, prefix), table)
    return found


def column_lineage(table: Table, datasets: dict[str, Dataset]) -> dict[str, list[dict]]:
    """For each column with an upstream: the input fields it comes from (namespace, name, field)."""
    lineage: dict[str, list[dict]] = {}
    for column in table.columns if table else ():
        inputs = []
        for source in column.upstream or ():
            qualified, _, field = source.rpartition(".")
            if qualified in datasets:
                inputs.append({"namespace": datasets[qualified].namespace,
                               "name": datasets[qualified].name, "field": field})
        if inputs:
            lineage[column.name] = inputs
    return lineage
