#!/usr/bin/env bash
# Starts a local Prefect server on 127.0.0.1:4200 and serves the scheduled vitalflow deployment.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.venv/bin
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.vitalflow/prefect}"
export PREFECT_API_URL="http://127.0.0.1:4200/api"
mkdir -p "$PREFECT_HOME"
"$BIN/prefect" server start --host 127.0.0.1 --port 4200 >"$PREFECT_HOME/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "$PREFECT_API_URL/health" >/dev/null || { echo "Prefect server did not start; see $PREFECT_HOME/server.log" >&2; exit 1; }
echo "Prefect UI: http://127.0.0.1:4200  (deployment vitalflow-pipeline/vitalflow-nightly; Ctrl-C stops both)"
# The deployment reads the generated sample unless VITALFLOW_INPUT names another folder.
[ -n "${VITALFLOW_INPUT:-}" ] || "$BIN/vitalflow" generate --out .vitalflow/sample --patients 500 >/dev/null
"$BIN/python" -m flows.serve
