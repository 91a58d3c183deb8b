"""Apply or destroy the local environment's database (roles, schemas, grants) and bucket; run by
terraform/envs/local as `python -m vitalflow.provision.local_env apply|destroy database|bucket`
with the part's settings as JSON in VITALFLOW_LOCAL_SPEC (never a secret: passwords go to a
passfile, S3 keys come from the store's own key file)."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import errors, sql


def _roles(spec: dict) -> dict[str, str]:
    prefix = spec["role_prefix"]
    return {"app": f"{prefix}_app", "analyst": f"{prefix}_analyst",
            "reidentifier": f"{prefix}_reidentifier"}


def _edit_passfile(path: Path, role: str, password: str | None) -> None:
    """Set (or with None remove) the line of role in a libpq passfile kept at mode 600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    with path.open("r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        kept = [line for line in handle.read().splitlines()
                if line and line.split(":")[3:4] != [role]]
        if password is not None:
            kept.append(f"*:*:*:{role}:{password}")
        handle.seek(0)
        handle.truncate()
        handle.write("\n".join(kept) + ("\n" if kept else ""))


def _admin(spec: dict, database: str | None = None) -> psycopg.Connection:
    url = spec["admin_url"]
    if database:
        parts = urlsplit(url)
        url = parts._replace(path=f"/{database}").geturl()
    return psycopg.connect(url, autocommit=True)


def apply_database(spec: dict) -> None:
    roles = _roles(spec)
    ident = {name: sql.Identifier(role) for name, role in roles.items()}
    database = sql.Identifier(spec["database"])
    with _admin(spec) as admin:
        password = secrets.token_urlsafe(24)
        try:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                ident["app"], sql.Literal(password)))
        except errors.DuplicateObject:  # re-apply: a fresh password, written to the passfile
            admin.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                ident["app"], sql.Literal(password)))
        _edit_passfile(Path(spec["passfile"]), roles["app"], password)
        for group in ("analyst", "reidentifier"):
            try:
                admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident[group]))
            except errors.DuplicateObject:
                pass
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                             (spec["database"],)).fetchone():
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, ident["app"]))
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        admin.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(
            database, ident["analyst"], ident["reidentifier"]))
    with _admin(spec, spec["database"]) as conn:
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        for schema in spec["schemas"]:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(schema), ident["app"]))
            conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(
                sql.Identifier(schema)))
        for schema in spec["analyst_schemas"]:
            target = sql.Identifier(schema)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                target, ident["analyst"]))
            conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT "
                                 "ON TABLES TO {}").format(ident["app"], target, ident["analyst"]))
        if "identity" in spec["schemas"]:
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA identity TO {}").format(
                ident["reidentifier"]))


def destroy_database(spec: dict) -> None:
    roles = _roles(spec)
    with _admin(spec) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(spec["database"])))
        for role in roles.values():
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    _edit_passfile(Path(spec["passfile"]), roles["app"], None)


def _s3_client(spec: dict):
    import boto3

    from vitalflow.object_store import s3_options

    options = s3_options(Path(spec["home"]), endpoint=spec["endpoint"])
    return boto3.client("s3", endpoint_url=spec["endpoint"], region_name=options["s3.region"],
                        aws_access_key_id=options.get("s3.access-key-id"),
                        aws_secret_access_key=options.get("s3.secret-access-key"))


def apply_bucket(spec: dict) -> None:
    client = _s3_client(spec)
    try:
        client.create_bucket(Bucket=spec["bucket"])
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass


def destroy_bucket(spec: dict) -> None:
    client = _s3_client(spec)
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=spec["bucket"]):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=spec["bucket"], Delete={"Objects": keys})
    try:
        client.delete_bucket(Bucket=spec["bucket"])
    except client.exceptions.NoSuchBucket:
        pass


ACTIONS = {("apply", "database"): apply_database, ("destroy", "database"): destroy_database,
           ("apply", "bucket"): apply_bucket, ("destroy", "bucket"): destroy_bucket}


def main(argv: list[str]) -> int:
    action = ACTIONS.get(tuple(argv))
    if action is None:
        print("usage: python -m vitalflow.provision.local_env {apply|destroy} {database|bucket}",
              file=sys.stderr)
        return 2
    action(json.loads(os.environ["VITALFLOW_LOCAL_SPEC"]))
    print(f"{argv[0]} {argv[1]}: done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
