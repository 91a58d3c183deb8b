#!/usr/bin/env bash
# Install step of self-serve SQL (called once by `make install`): Debian's chromium for the
# console's browser tests (never a downloaded browser build) and the Trino server.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "infra/sql/install.sh: /usr/bin/chromium is missing (sudo apt-get install chromium);" \
         "the console's browser test will be skipped" >&2
  fi
fi
bash infra/trino/install.sh
