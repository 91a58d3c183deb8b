#!/usr/bin/env bash
# Generates the compose stack's secrets once into .vitalflow/compose/ (folder 700, files 600):
# compose secrets under secrets/, one env file per service under env/, and for vitalflow on the
# host a libpq passfile (pgpass) and host.env. Existing values are kept; delete the folder (and
# the compose volumes) to start over. Nothing is printed but paths.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="${VITALFLOW_COMPOSE_SECRETS:-$ROOT/.vitalflow/compose}"
umask 077
mkdir -p "$DIR/secrets" "$DIR/env"
chmod 700 "$DIR" "$DIR/secrets" "$DIR/env"

value() {  # value NAME: the stored value of NAME, generated on first use
  local file="$DIR/secrets/$1"
  [ -s "$file" ] || head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$file"
  cat "$file"
}

ADMIN=$(value postgres_admin_password)
APP=$(value vitalflow_db_password)
ANALYST=$(value analyst_db_password)
MARQUEZ=$(value marquez_db_password)
PREFECT=$(value prefect_db_password)
CLICKHOUSE=$(value clickhouse_password)
S3_ACCESS="VF$(value s3_access_key | head -c 16 | tr a-z A-Z)"
S3_SECRET=$(value s3_secret_key)
PSEUDONYM_KEY=$(value pseudonym_key)
value grafana_admin_password >/dev/null
[ -s "$DIR/secrets/alert_webhook_url" ] || echo "http://127.0.0.1:9/replace-with-your-webhook" >"$DIR/secrets/alert_webhook_url"
: "$ADMIN"

cat >"$DIR/secrets/s3_config.json" <<JSON
{"identities": [{"name": "vitalflow", "credentials": [{"accessKey": "$S3_ACCESS", "secretKey": "$S3_SECRET"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
S3_KEYS="AWS_ACCESS_KEY_ID=$S3_ACCESS
AWS_SECRET_ACCESS_KEY=$S3_SECRET"
printf 'VITALFLOW_DB_PASSWORD=%s\nANALYST_DB_PASSWORD=%s\nMARQUEZ_DB_PASSWORD=%s\nPREFECT_DB_PASSWORD=%s\n' \
  "$APP" "$ANALYST" "$MARQUEZ" "$PREFECT" >"$DIR/env/postgres.env"
printf 'CLICKHOUSE_PASSWORD=%s\n' "$CLICKHOUSE" >"$DIR/env/clickhouse.env"
printf 'POSTGRES_PASSWORD=%s\n' "$MARQUEZ" >"$DIR/env/marquez.env"
printf 'ANALYST_DB_PASSWORD=%s\n%s\n' "$ANALYST" "$S3_KEYS" >"$DIR/env/trino.env"
printf 'PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://prefect:%s@postgres:5432/prefect\n' \
  "$PREFECT" >"$DIR/env/prefect-server.env"
printf 'PGPASSWORD=%s\nVITALFLOW_CLICKHOUSE_PASSWORD=%s\nVITALFLOW_PSEUDONYM_KEY=%s\n%s\n' \
  "$APP" "$CLICKHOUSE" "$PSEUDONYM_KEY" "$S3_KEYS" >"$DIR/env/prefect-worker.env"
printf 'ANALYST_DB_PASSWORD=%s\n' "$ANALYST" >"$DIR/env/grafana.env"
# vitalflow on the host (config/compose.toml): `set -a; . .vitalflow/compose/host.env; set +a`.
printf 'VITALFLOW_CLICKHOUSE_PASSWORD=%s\nVITALFLOW_PSEUDONYM_KEY=%s\n%s\n' \
  "$CLICKHOUSE" "$PSEUDONYM_KEY" "$S3_KEYS" >"$DIR/host.env"
printf '127.0.0.1:5432:*:vitalflow:%s\n127.0.0.1:5432:*:vitalflow_analyst:%s\n' "$APP" "$ANALYST" >"$DIR/pgpass"
chmod 600 "$DIR"/secrets/* "$DIR"/env/* "$DIR/host.env" "$DIR/pgpass"
echo "compose secrets in $DIR (mode 600)"
