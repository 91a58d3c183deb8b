#!/usr/bin/env bash
# Installs the Terraform checks' tools once into a cache that outlives clones and `make clean`:
#   tofu     OpenTofu built from its Go module (the Go module proxy is reachable; release downloads
#            and registry.terraform.io are not), several minutes on 2 cores, once per version;
#   checkov  from PyPI in its own virtualenv (its pinned dependencies stay out of .venv).
# Called by `make install`. Re-running is cheap: each tool is skipped when its version is there.
set -euo pipefail
TOOLS="${VITALFLOW_TOOLS:-$HOME/.cache/vitalflow/tools}"
TOFU_VERSION=v1.12.6
CHECKOV_VERSION=3.3.30
PYTHON="${PYTHON:-python3}"
umask 077
mkdir -p "$TOOLS/bin"

if ! "$TOOLS/bin/tofu" version 2>/dev/null | grep -q "OpenTofu ${TOFU_VERSION}"; then
  command -v go >/dev/null || { echo "infra/terraform/install.sh: Go is needed to build OpenTofu" >&2; exit 1; }
  echo "Building OpenTofu ${TOFU_VERSION} from its Go module into $TOOLS/bin (once; a few minutes)"
  # `go install module@version` refuses modules with replace directives, so build from the
  # downloaded module: its go.mod and go.sum pin every dependency.
  # The machine's own Go (1.26 here; OpenTofu 1.12 needs >= 1.26.6); go.sum is used as shipped.
  export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
  src=$(go mod download -json "github.com/opentofu/opentofu@${TOFU_VERSION}" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  (cd "$src" && go build -trimpath -buildvcs=false -ldflags="-s -w -X github.com/opentofu/opentofu/version.dev=no" \
      -o "$TOOLS/bin/tofu.partial" ./cmd/tofu)
  mv "$TOOLS/bin/tofu.partial" "$TOOLS/bin/tofu"
fi

if [ "$(cat "$TOOLS/checkov/.version" 2>/dev/null)" != "${CHECKOV_VERSION}" ]; then
  echo "Installing checkov ${CHECKOV_VERSION} into $TOOLS/checkov"
  rm -rf "$TOOLS/checkov"
  "$PYTHON" -m venv "$TOOLS/checkov"
  "$TOOLS/checkov/bin/pip" install --quiet --disable-pip-version-check "checkov==${CHECKOV_VERSION}"
  ln -sf "$TOOLS/checkov/bin/checkov" "$TOOLS/bin/checkov"
  echo "${CHECKOV_VERSION}" >"$TOOLS/checkov/.version"
fi
echo "Terraform checks' tools in $TOOLS: $("$TOOLS/bin/tofu" version 2>/dev/null | grep -m1 OpenTofu), checkov ${CHECKOV_VERSION}"
