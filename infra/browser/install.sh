#!/usr/bin/env bash
# Headless Chromium for the web-page tests (Playwright drives Debian's chromium; it never
# downloads a browser of its own). Installs it when missing and we are root; else says what to do.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for the headless page tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
    fonts-dejavu-core >/dev/null
else
  echo "note: the page tests need Chromium at /usr/bin/chromium; install it with" \
       "'sudo apt-get install chromium' (they skip without it)" >&2
fi
