"""Where each layer lives: a storage profile resolved to backends, starting embedded services."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from storage_backends.base import Backend
from storage_backends.postgres import PostgresBackend
from storage_backends.registry import open_backend
from vitalflow.config import Settings
from vitalflow.database import ensure_layers
from vitalflow.ingest import RawStore
from vitalflow.ingest.parquet import ParquetRawStore
from vitalflow.services import EmbeddedPostgres


@dataclass
class Layers:
    """The backends of one profile. The control database (run ledger, watermarks, ownership)
    is always PostgreSQL: the configured server or the embedded one."""

    profile: str
    raw: RawStore  # Parquet files or Iceberg (vitalflow/ingest/store.py)
    refined: Backend
    derived: Backend
    control: PostgresBackend

    def close(self) -> None:
        for backend in {id(b): b for b in (self.refined, self.derived, self.control)}.values():
            backend.close()


def embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.paths.root, settings.database.embedded_port)


def control_url(settings: Settings) -> str:
    """The configured DSN, or the embedded server's (started if needed)."""
    return settings.database.url or embedded_postgres(settings).up()


def open_layers(settings: Settings, profile: str | None = None) -> Layers:
    """The backends of the profile (default: storage.profile), with their services started
    and their tables created."""
    name = profile or settings.storage.profile
    placement = settings.storage.placement(name)
    control = PostgresBackend(control_url(settings))
    opened: dict[str, Backend] = {control.url: control}

    def backend(engine: str) -> Backend:
        url = engine_url(settings, engine, control.url)
        if url not in opened:
            opened[url] = open_backend(url, **engine_options(settings, url))
        return opened[url]

    raw = (ParquetRawStore(settings.paths.raw) if placement.raw == "parquet"
           else _iceberg_raw(backend("iceberg")))
    layers = Layers(name, raw, backend(placement.refined), backend(placement.derived), control)
    ensure_layers(control, layers.refined, layers.derived)
    return layers


def engine_url(settings: Settings, engine: str, control: str) -> str:
    """A backend URL for an engine name; full URLs pass through unchanged."""
    if "://" in engine:
        return engine
    if engine in ("postgresql", "postgres"):
        return control
    if engine == "clickhouse":
        return settings.clickhouse.url or f"chdb://{(settings.paths.root / 'clickhouse')}"
    if engine == "iceberg":
        if settings.iceberg.catalog_url:
            return settings.iceberg.catalog_url
        if "://" not in control:
            raise ValueError("the Iceberg catalog lives in the control database, whose "
                             "database.url is a key=value string: give it as a URL "
                             "(postgresql://user@host:5432/db) or set iceberg.catalog_url")
        warehouse = settings.iceberg.warehouse or f"s3://{settings.s3.bucket}/warehouse"
        separator = "&" if urlsplit(control).query else "?"
        return f"iceberg+{control}{separator}{urlencode({'warehouse': warehouse})}"
    raise ValueError(f"unknown storage engine {engine!r}: use parquet, postgresql, iceberg, "
                     "clickhouse or a backend URL")


def engine_options(settings: Settings, url: str) -> dict:
    """Engine-specific options: object-store settings for an Iceberg warehouse on S3, starting
    the embedded object store when no endpoint is configured."""
    if urlsplit(url).scheme in ("chdb", "clickhouse", "clickhouses"):
        return {"database_prefix": settings.clickhouse.database_prefix}
    warehouse = parse_qs(urlsplit(url).query).get("warehouse", [""])[0]
    if not url.startswith("iceberg+") or not warehouse.startswith("s3://"):
        return {}
    from vitalflow.object_store import s3_options

    if not settings.s3.endpoint:
        embedded_object_store(settings).up()
    return {"s3": s3_options(settings.paths.root, settings.s3.endpoint or None,
                             settings.s3.region)}


def embedded_object_store(settings: Settings):
    from vitalflow.object_store import SeaweedFS

    return SeaweedFS(settings.paths.root, settings.s3.embedded_port, bucket=settings.s3.bucket)


def _iceberg_raw(backend: Backend):
    from vitalflow.ingest.iceberg import IcebergRawStore

    return IcebergRawStore(backend)


def describe(layers: Layers) -> dict[str, str]:
    """Where each layer lives, without secrets (for summaries and the CLI)."""
    from storage_backends.base import redact

    raw = str(layers.raw.root) if isinstance(layers.raw, ParquetRawStore) else layers.raw.backend.url
    return {"profile": layers.profile, "raw": redact(raw), "refined": redact(layers.refined.url),
            "derived": redact(layers.derived.url), "control": redact(layers.control.url)}
