#!/usr/bin/env bash
# Sourced by the install scripts: debian_install LABEL WHAT PACKAGE... installs the Debian
# packages as root without letting Debian start their system-wide daemons (vitalflow runs its
# own processes only). Never fails the install: without root it says what to install.
debian_install() {
    local label=$1 what=$2
    shift 2
    [ $# -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$label: please install the Debian packages: $* (apt-get install $*); $what" >&2
        return 0
    fi
    echo "$label: installing $* from Debian" >&2
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created_policy=1
    fi
    { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
      || { apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; }; \
    } >/dev/null || echo "$label: apt-get could not install $*" >&2
    [ "$created_policy" -eq 1 ] && rm -f "$policy"
    return 0
}
