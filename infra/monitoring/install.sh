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
# shellcheck source=../debian-packages.sh
source "$(dirname "$0")/../debian-packages.sh"
debian_install monitoring "the monitoring stack and its tests need them" "${packages[@]}"
exit 0
