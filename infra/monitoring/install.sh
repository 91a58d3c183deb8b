#!/usr/bin/env bash
# Installs the monitoring stack's system packages (Prometheus, Alertmanager, Pushgateway) and
# Chromium for the status-page check, from Debian, when missing. Called by `make install`.
# Never fails the install: without root it says what to install and the monitoring tests skip.
set -u
packages=()
need() { command -v "$1" >/dev/null 2>&1 || packages+=("$2"); }
need prometheus prometheus
need promtool prometheus
need prometheus-alertmanager prometheus-alertmanager
need amtool prometheus-alertmanager
need prometheus-pushgateway prometheus-pushgateway
[ -x /usr/bin/chromium ] || packages+=(chromium)
# shellcheck disable=SC2207
packages=($(printf '%s\n' "${packages[@]}" | sort -u))
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "monitoring: please install the Debian packages: ${packages[*]}" \
         "(apt-get install ${packages[*]}); the monitoring stack and its tests need them" >&2
    exit 0
fi
echo "monitoring: installing ${packages[*]} from Debian" >&2
# The Debian packages would start system-wide daemons; vitalflow runs its own processes only.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
{ apt-get install -y --no-install-recommends "${packages[@]}" \
  || { apt-get update -qq && apt-get install -y --no-install-recommends "${packages[@]}"; }; } \
  >/dev/null || echo "monitoring: apt-get could not install ${packages[*]}" >&2
[ "$created_policy" -eq 1 ] && rm -f "$policy"
exit 0
