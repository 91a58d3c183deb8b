#!/usr/bin/env bash
# Installs the PostgreSQL failover drills' system packages (etcd, HAProxy) from Debian when
# missing. Called by `make install`; Patroni comes from PyPI (the `ha` extra).
# Never fails the install: without root it says what to install and the drill tests skip.
set -u
# As root, Patroni runs as the PostgreSQL system user (Postgres refuses root), which cannot
# reach the project venv's interpreter when that lives under /root (pyenv): it gets a venv of
# its own on Debian's python3, readable by everyone, holding only Patroni.
ha_venv=.vitalflow/cache/ha-venv
if [ "$(id -u)" -eq 0 ] && [ -x /usr/bin/python3 ] && [ ! -x "$ha_venv/bin/patroni" ]; then
    echo "ha: installing Patroni into $ha_venv for the PostgreSQL system user" >&2
    (umask 022 && mkdir -p "$ha_venv" && /usr/bin/python3 -m venv "$ha_venv" \
        && "$ha_venv/bin/pip" install --quiet 'patroni[etcd3]>=4,<5' 'psycopg[binary]>=3.1') \
        || echo "ha: could not install Patroni into $ha_venv" >&2
fi
packages=()
command -v etcd >/dev/null 2>&1 || packages+=(etcd-server)
command -v haproxy >/dev/null 2>&1 || packages+=(haproxy)
# shellcheck source=../debian-packages.sh
source "$(dirname "$0")/../debian-packages.sh"
debian_install ha "the postgres-failover drill and its tests need them" "${packages[@]}"
exit 0
