"""Conformance fixture: Iceberg on a SQLite catalog and local files, or on PostgreSQL and S3."""

import uuid

from storage_backends.iceberg import IcebergBackend
from vitalflow.object_store import s3_options


def make_backend(request, tmp_path, name: str) -> IcebergBackend:
    if name == "iceberg-local":
        return IcebergBackend(f"iceberg+sqlite:///{tmp_path}/catalog.db"
                              f"?warehouse=file://{tmp_path}/warehouse")
    server = request.getfixturevalue("s3_server")
    url = request.getfixturevalue("database_url").replace("postgresql://", "iceberg+postgresql://")
    prefix = f"s3://{server.bucket}/conformance-{uuid.uuid4().hex[:12]}"
    return IcebergBackend(f"{url}&warehouse={prefix}", s3=s3_options(server.root))
