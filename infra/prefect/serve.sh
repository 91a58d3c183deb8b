#!/usr/bin/env bash
# `make serve`: a Prefect server on 127.0.0.1, the deployments of prefect.yaml (checked against
# the ownership graph first), the automations, the file watcher and a process worker. Ctrl-C
# (or SIGTERM) stops everything it started. Settings (environment):
#   PREFECT_PORT (4200), VITALFLOW_INPUT (watched and nightly input folder: .vitalflow/inbox),
#   VITALFLOW_S3_PREFIX (also watch bucket/prefix, e.g. vitalflow/raw/), VITALFLOW_WORK_POOL,
#   VITALFLOW_PREFECT_FILE (prefect.yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$PWD/.venv/bin"
PORT="${PREFECT_PORT:-4200}"
POOL="${VITALFLOW_WORK_POOL:-vitalflow-process}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.vitalflow/prefect}"
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export VITALFLOW_PROJECT_DIR="$PWD"  # prefect.yaml's pull step: where the worker runs flows
export VITALFLOW_INPUT="${VITALFLOW_INPUT:-$PWD/.vitalflow/inbox}"
umask 077
mkdir -p "$PREFECT_HOME" "$VITALFLOW_INPUT"

pids=()
# Each child leads its own process group, so stopping it also stops what it started (the
# worker's flow-run processes).
start() { setsid "$@" & pids+=($!); }
stop() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

"$BIN/vitalflow" deploy check --file "${VITALFLOW_PREFECT_FILE:-prefect.yaml}" >/dev/null  # a trigger cycle or a second writer stops here
start "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" >"$PREFECT_HOME/server.log" 2>&1
for _ in $(seq 120); do
  curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "$PREFECT_API_URL/health" >/dev/null || { echo "Prefect server did not start; see $PREFECT_HOME/server.log" >&2; exit 1; }
"$BIN/prefect" --no-prompt work-pool create "$POOL" --type process --overwrite >/dev/null
"$BIN/prefect" --no-prompt deploy --all --pool "$POOL" --prefect-file "${VITALFLOW_PREFECT_FILE:-prefect.yaml}" >"$PREFECT_HOME/deploy.log" 2>&1 \
  || { echo "prefect deploy failed; see $PREFECT_HOME/deploy.log" >&2; exit 1; }
"$BIN/python" -m flows.automations >/dev/null || echo "automations not created (see docs/deploy.md)" >&2
start "$BIN/python" -m flows.watch --input "$VITALFLOW_INPUT" \
  ${VITALFLOW_S3_PREFIX:+--s3-prefix "$VITALFLOW_S3_PREFIX"} >"$PREFECT_HOME/watch.log" 2>&1
cat <<MSG
Prefect UI: http://127.0.0.1:$PORT   (logs in $PREFECT_HOME; Ctrl-C stops server, watcher and worker)
Files dropped into $VITALFLOW_INPUT are ingested, refined and derived within seconds.
From another shell:
  export PREFECT_API_URL=$PREFECT_API_URL
  .venv/bin/prefect deployment run vitalflow-pipeline/nightly
  .venv/bin/vitalflow run        # also runs as a flow on this server while PREFECT_API_URL is set
MSG
start "$BIN/python" -m flows.serve --pool "$POOL"
wait "${pids[-1]}"
