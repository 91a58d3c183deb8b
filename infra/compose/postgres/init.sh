#!/usr/bin/env bash
# First start of the compose PostgreSQL: vitalflow's roles and the Marquez and Prefect databases.
# Passwords come from the service's env file; psql reads them with \getenv, so none is on a
# command line.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv app VITALFLOW_DB_PASSWORD
\getenv analyst ANALYST_DB_PASSWORD
\getenv marquez MARQUEZ_DB_PASSWORD
\getenv prefect PREFECT_DB_PASSWORD
CREATE ROLE vitalflow LOGIN CREATEROLE PASSWORD :'app';
CREATE ROLE vitalflow_analyst LOGIN PASSWORD :'analyst';
CREATE ROLE vitalflow_reidentifier NOLOGIN;
ALTER DATABASE vitalflow OWNER TO vitalflow;
REVOKE ALL ON DATABASE vitalflow FROM PUBLIC;
GRANT CONNECT ON DATABASE vitalflow TO vitalflow_analyst, vitalflow_reidentifier;
-- The Iceberg catalog tables (public) are readable for Trino's analyst login.
ALTER DEFAULT PRIVILEGES FOR ROLE vitalflow IN SCHEMA public GRANT SELECT ON TABLES TO vitalflow_analyst;
CREATE ROLE marquez LOGIN PASSWORD :'marquez';
CREATE DATABASE marquez OWNER marquez;
CREATE ROLE prefect LOGIN PASSWORD :'prefect';
CREATE DATABASE prefect OWNER prefect;
SQL
