"""From a URL scheme to its backend class, imported only when used, with an install hint."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from storage_backends.base import Backend, BackendMissing

# scheme -> (module, class, pip extra that brings the engine's packages)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "postgresql": ("storage_backends.postgres", "PostgresBackend", None),
    "postgres": ("storage_backends.postgres", "PostgresBackend", None),
    "iceberg+postgresql": ("storage_backends.iceberg", "IcebergBackend", "iceberg"),
    "iceberg+sqlite": ("storage_backends.iceberg", "IcebergBackend", "iceberg"),
    "chdb": ("storage_backends.clickhouse", "ClickHouseBackend", "clickhouse"),
    "clickhouse": ("storage_backends.clickhouse", "ClickHouseBackend", "clickhouse"),
    "clickhouses": ("storage_backends.clickhouse", "ClickHouseBackend", "clickhouse"),
}


def backend_class(url: str) -> type[Backend]:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in BACKENDS:
        raise ValueError(f"no storage backend for URL scheme {scheme!r}; known: "
                         f"{', '.join(sorted(BACKENDS))}")
    module_name, class_name, extra = BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'vitalflow[{extra}]'" if extra else "pip install vitalflow"
        raise BackendMissing(f"the {scheme} backend needs the package {exc.name!r}: {hint}"
                             ) from None
    return getattr(module, class_name)


def open_backend(url: str, **options) -> Backend:
    """The backend for url; options are engine-specific (e.g. S3 settings for Iceberg)."""
    return backend_class(url)(url, **options)
