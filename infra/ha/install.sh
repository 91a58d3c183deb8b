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
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ha: please install the Debian packages: ${packages[*]}" \
         "(apt-get install ${packages[*]}); the postgres-failover drill and its tests need them" >&2
    exit 0
fi
echo "ha: installing ${packages[*]} from Debian" >&2
# The Debian packages would start system-wide etcd and haproxy daemons; the drill starts its own.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
{ apt-get install -y --no-install-recommends "${packages[@]}" \
  || { apt-get update -qq && apt-get install -y --no-install-recommends "${packages[@]}"; }; } \
  >/dev/null || echo "ha: apt-get could not install ${packages[*]}" >&2
[ "$created_policy" -eq 1 ] && rm -f "$policy"
exit 0
