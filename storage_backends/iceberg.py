"""Apache Iceberg engine: a pyiceberg SQL catalog (SQLite or PostgreSQL), files local or on S3."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg import expressions as ex
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
from pyiceberg.schema import Schema
from pyiceberg.table import Table as IcebergTable
from pyiceberg.table import Transaction
from pyiceberg.types import (BinaryType, BooleanType, DateType, DecimalType, DoubleType,
                             LongType, NestedField, StringType, TimestamptzType)
from sqlalchemy.exc import InterfaceError, OperationalError

from storage_backends.base import (Backend, BackendUnavailable, Capabilities, Filter, Snapshot,
                                   redact)
from storage_backends.schema import Table

# Logical type -> Iceberg type; timestamps are microseconds in UTC (timestamptz).
ICEBERG_TYPES = {
    "text": StringType(), "int": LongType(), "float": DoubleType(), "bool": BooleanType(),
    "date": DateType(), "timestamp": TimestamptzType(), "json": StringType(),
    "decimal": DecimalType(18, 6), "binary": BinaryType(),
}
# Counted in Arrow memory (~1/4 as Parquet): an upsert or delete rewrites whole files, so files
# of ~350k narrow rows keep a small upsert cheap without making scans open many files.
TARGET_FILE_BYTES = str(32 << 20)
SECRET_OPTIONS = ("s3.access-key-id", "s3.secret-access-key", "s3.session-token")
_COMPARISONS = {"=": ex.EqualTo, "!=": ex.NotEqualTo, "<": ex.LessThan, "<=": ex.LessThanOrEqual,
                ">": ex.GreaterThan, ">=": ex.GreaterThanOrEqual}


def iceberg_schema(table: Table) -> Schema:
    fields = [NestedField(i, c.name, ICEBERG_TYPES[c.type], required=not c.nullable,
                          doc=c.comment) for i, c in enumerate(table.columns, start=1)]
    keys = [i for i, c in enumerate(table.columns, start=1) if c.name in table.primary_key]
    return Schema(*fields, identifier_field_ids=keys)


def catalog_properties(url: str) -> dict[str, str]:
    """pyiceberg SqlCatalog properties from an iceberg+sqlite:// or iceberg+postgresql:// URL:
    the warehouse parameter is Iceberg's, every other one stays with the database URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    warehouse = next((v for k, v in query if k == "warehouse"), None)
    if not warehouse:
        raise ValueError(f"{redact(url)}: add ?warehouse=file:///path or ?warehouse=s3://bucket/"
                         "prefix, where the table files go")
    engine = parts.scheme.split("+", 1)[1]
    scheme = "postgresql+psycopg" if engine == "postgresql" else engine
    rest = urlencode([(k, v) for k, v in query if k != "warehouse"])
    return {"uri": f"{scheme}://{parts.netloc}{parts.path}{'?' + rest if rest else ''}",
            "warehouse": warehouse}


class IcebergBackend(Backend):
    """Iceberg tables: namespace = layer, name = table name. Each write is one atomic snapshot
    of one table; s3 holds pyiceberg's S3 properties (see vitalflow.object_store.s3_options)."""

    name = "Iceberg"
    # pyiceberg binds one Python literal per 'in' value: longer lists are filtered in Arrow.
    capabilities = Capabilities(transactions=False, time_travel=True, enforces_keys=False,
                                max_filter_values=10_000)

    def __init__(self, url: str, s3: dict | None = None) -> None:
        super().__init__(url)
        self._properties = catalog_properties(url)
        self._s3 = dict(s3 or {})
        self._catalog: SqlCatalog | None = None

    @property
    def warehouse(self) -> str:
        return self._properties["warehouse"]

    @property
    def catalog(self) -> SqlCatalog:
        if self._catalog is None:
            with self.service():
                self._catalog = SqlCatalog("vitalflow", **self._properties, **self._s3)
        return self._catalog

    def load(self, table: Table | tuple[str, str]) -> IcebergTable:
        identifier = (table.layer, table.name) if isinstance(table, Table) else table
        with self.service():
            return self.catalog.load_table(identifier)

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.engine.dispose()  # lets the catalog database be dropped or stopped
            self._catalog = None

    # -- primitives ---------------------------------------------------------------------------

    def _create(self, table: Table) -> None:
        self.create_iceberg(table.layer, table.name, iceberg_schema(table),
                            {"comment": table.comment, "owner": table.owner,
                             "write.target-file-size-bytes": TARGET_FILE_BYTES})

    def create_iceberg(self, namespace: str, name: str, schema: Schema | pa.Schema,
                       properties: dict[str, str], **options) -> IcebergTable:
        """Create a table from an Iceberg or Arrow schema if it does not exist; on a table that
        exists, column docs and the given properties that differ are refreshed."""
        with self.service():
            self.catalog.create_namespace_if_not_exists(namespace)
            iceberg = self.catalog.create_table_if_not_exists(
                (namespace, name), schema, properties=properties, **options)
            return _refresh_docs(iceberg, schema, properties)

    def _append(self, table: Table, data: pa.Table) -> None:
        with self.service():
            self.load(table).append(_clustered(table, data))

    def _upsert(self, table: Table, data: pa.Table) -> None:
        with self.service():
            iceberg = self.load(table)
            with iceberg.transaction() as txn:
                replaced = _rewrite_without(txn, iceberg, table.primary_key,
                                            data.select(list(table.primary_key)))
                if not replaced:
                    txn.append(_clustered(table, data))
                    return
                with txn.update_snapshot().overwrite() as overwrite:
                    _swap(overwrite, replaced)
                    for data_file in _dataframe_to_data_files(
                            txn.table_metadata, _clustered(table, data), iceberg.io):
                        overwrite.append_data_file(data_file)

    def _delete(self, table: Table, keys: pa.Table) -> None:
        with self.service():
            iceberg = self.load(table)
            with iceberg.transaction() as txn:
                replaced = _rewrite_without(txn, iceberg, table.primary_key, keys)
                if replaced:
                    with txn.update_snapshot().overwrite() as overwrite:
                        _swap(overwrite, replaced)

    def _read(self, table: Table, columns: list[str], where: list[Filter],
              snapshot: int | None) -> pa.Table:
        with self.service():
            scan = self.load(table).scan(row_filter=_expression(where),
                                         selected_fields=tuple(columns), snapshot_id=snapshot)
            return scan.to_arrow()

    def _count(self, table: Table) -> int:
        with self.service():
            return self.load(table).scan().count()

    def _exists(self, table: Table) -> bool:
        with self.service():
            return self.catalog.table_exists((table.layer, table.name))

    def _storage_bytes(self, table: Table) -> int:
        with self.service():
            return stored_bytes(self.load(table))

    def _drop(self, table: Table) -> None:
        with self.service():
            try:
                self.catalog.purge_table((table.layer, table.name))
            except NoSuchTableError:
                pass

    def _snapshots(self, table: Table) -> list[Snapshot]:
        return snapshots_of(self.load(table))

    def _comments(self, table: Table) -> dict[str, str]:
        iceberg = self.load(table)
        return {"": iceberg.properties.get("comment", ""),
                **{f.name: f.doc or "" for f in iceberg.schema().fields}}

    # -- service errors -----------------------------------------------------------------------

    @contextmanager
    def service(self) -> Iterator[None]:
        """Engine errors as BackendUnavailable naming the service, with secrets scrubbed."""
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
            raise BackendUnavailable(
                f"the Iceberg catalog database at {redact(self._properties['uri'])} is not "
                f"reachable ({self._scrub(reason[-1] if reason else type(exc).__name__)}). "
                "Start the embedded PostgreSQL with `vitalflow services up`, or point the "
                "iceberg+postgresql:// URL at a running server.") from None
        except OSError as exc:
            if not self.warehouse.startswith("s3"):
                raise
            endpoint = self._s3.get("s3.endpoint")
            if endpoint and not _reachable(endpoint):
                raise BackendUnavailable(
                    f"S3 at {endpoint} is not reachable; start the embedded object store with "
                    "`vitalflow services up` or set VITALFLOW__S3__ENDPOINT") from None
            where = endpoint or f"AWS S3 ({self._s3.get('s3.region', 'default region')})"
            raise BackendUnavailable(
                f"S3 at {where} refused a request for {self.warehouse} "
                f"({self._scrub(str(exc))}); check the bucket, the region and the credentials "
                "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)") from None

    def _scrub(self, text: str) -> str:
        for option in SECRET_OPTIONS:
            if self._s3.get(option):
                text = text.replace(self._s3[option], "***")
        return redact(text)


def _refresh_docs(iceberg: IcebergTable, schema: Schema | pa.Schema,
                  properties: dict[str, str]) -> IcebergTable:
    """Column docs and table properties as given, in one commit each, only where they differ
    (a table created by an earlier version keeps its metadata otherwise)."""
    held = {f.name: f.doc for f in iceberg.schema().fields}
    changed = [f for f in schema.fields if f.name in held and f.doc != held[f.name]
               ] if isinstance(schema, Schema) else []
    if changed:
        with iceberg.update_schema() as update:
            for field in changed:
                update.update_column(field.name, doc=field.doc)
    stale = {k: v for k, v in properties.items() if iceberg.properties.get(k) != v}
    if stale:
        with iceberg.transaction() as txn:
            txn.set_properties(stale)
    return iceberg.refresh() if changed or stale else iceberg


def stored_bytes(iceberg: IcebergTable) -> int:
    """Data and delete files every kept snapshot references, plus their manifests: files of
    older snapshots stay on storage (for time travel) until they are expired."""
    files = iceberg.inspect.all_files().select(["file_path", "file_size_in_bytes"])
    manifests = iceberg.inspect.all_manifests().select(["path", "length"])
    unique_files = files.group_by("file_path").aggregate([("file_size_in_bytes", "max")])
    unique_manifests = manifests.group_by("path").aggregate([("length", "max")])
    return (pc.sum(unique_files.column("file_size_in_bytes_max")).as_py() or 0) + (
        pc.sum(unique_manifests.column("length_max")).as_py() or 0)


def snapshots_of(iceberg: IcebergTable) -> list[Snapshot]:
    """The table's snapshots, oldest first; rows = records the snapshot added."""
    return [Snapshot(s.snapshot_id,
                     datetime.fromtimestamp(s.timestamp_ms / 1000, UTC).isoformat(),
                     s.summary.operation.value if s.summary else "unknown",
                     int(s.summary.get("added-records", 0)) if s.summary else None)
            for s in sorted(iceberg.snapshots(), key=lambda s: s.timestamp_ms)]


def _reachable(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=3):
            return True
    except OSError:
        return False


def _clustered(table: Table, data: pa.Table) -> pa.Table:
    """Rows in key order, so each file covers a narrow key range and later upserts, deletes and
    filtered reads skip most files by their min/max statistics."""
    return data.sort_by([(k, "ascending") for k in table.primary_key])


def _rewrite_without(txn: Transaction, iceberg: IcebergTable, key_columns: tuple[str, ...],
                     keys: pa.Table) -> list[tuple]:
    """[(data file, files holding its rows not in keys)] for every file that holds one of keys.

    pyiceberg's In-filter delete binds one Python literal per key (100k keys into 1M rows: about
    12 s against 2-4 s here, see docs/storage.md) and its upsert is slower still. Here only the
    key columns of files whose statistics overlap the keys' range are read, matched with an Arrow
    hash join, and only files with a match are rewritten; the caller commits it as one
    snapshot."""
    first = key_columns[0]
    low, high = pc.min_max(keys.column(first)).values()
    candidates = iceberg.scan(row_filter=ex.And(ex.GreaterThanOrEqual(first, low.as_py()),
                                                ex.LessThanOrEqual(first, high.as_py())))
    tasks = list(candidates.plan_files())
    if not tasks:
        return []
    schema = iceberg.schema()

    def scan(task, projected: Schema) -> pa.Table:
        return ArrowScan(iceberg.metadata, iceberg.io, projected, ex.AlwaysTrue()).to_table([task])

    def rewrite(task) -> tuple | None:
        columns = list(key_columns)
        if not scan(task, schema.select(*columns)).join(keys, columns, join_type="left semi"
                                                         ).num_rows:
            return None
        # Row order within a file does not matter to Iceberg, so an anti join is the filter.
        kept = scan(task, schema).join(keys, columns, join_type="left anti")
        files = list(_dataframe_to_data_files(txn.table_metadata, kept, iceberg.io)
                     ) if kept.num_rows else []
        return task.file, files

    # A pool of its own: ArrowScan waits on pyiceberg's shared pool, which must not be the caller.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return [r for r in pool.map(rewrite, tasks) if r is not None]


def _swap(overwrite, replaced: list[tuple]) -> None:
    for old, new in replaced:
        overwrite.delete_data_file(old)
        for data_file in new:
            overwrite.append_data_file(data_file)


def _expression(where: list[Filter]) -> ex.BooleanExpression:
    terms: list[ex.BooleanExpression] = []
    for column, op, value in where:
        if op == "is null" or (op == "=" and value is None):
            terms.append(ex.IsNull(column))
        elif op == "is not null" or (op == "!=" and value is None):
            terms.append(ex.NotNull(column))
        elif op == "in":
            terms.append(ex.In(column, value) if value else ex.AlwaysFalse())
        elif op == "not in":
            terms.append(ex.NotIn(column, value) if value else ex.AlwaysTrue())
        else:
            terms.append(_COMPARISONS[op](column, value))
    return ex.And(*terms) if len(terms) > 1 else (terms[0] if terms else ex.AlwaysTrue())
