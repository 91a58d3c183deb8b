#!/bin/sh
# Exports secrets mounted as files (Kubernetes secret volumes) into the one process that needs
# them, so they are in no pod spec and no image: PREFECT_API_KEY from /var/run/secrets/prefect/key.
set -eu
if [ -r /var/run/secrets/prefect/key ]; then
  PREFECT_API_KEY=$(cat /var/run/secrets/prefect/key)
  export PREFECT_API_KEY
fi
exec "$@"
