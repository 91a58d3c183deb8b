#!/usr/bin/env bash
# Installs the Trino server (io.trino:trino-server from Maven Central, through mvn) into a cache
# folder, keeping only the plugins vitalflow uses; a second run does nothing. No Java 24+: says so
# and leaves Trino out (DuckDB, the default SQL engine, needs none of this).
set -euo pipefail
VERSION="${VITALFLOW_TRINO_VERSION:-476}"
CACHE="${VITALFLOW_TRINO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vitalflow/trino}"
SERVER="$CACHE/trino-server-$VERSION"
# The catalogs in infra/trino/catalog/; the PostgreSQL connector needs the geospatial types.
PLUGINS="iceberg postgresql clickhouse geospatial"
if [ "$(cat "$SERVER/.vitalflow-complete" 2>/dev/null)" = "$PLUGINS" ]; then
  exit 0
fi
# Trino 476 runs on Java 24 or newer: the machine's second JDK (Temurin 25); Debian 12 has only 17.
java_home=""
for candidate in "${VITALFLOW_TRINO_JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/*; do
  [ -n "$candidate" ] && [ -x "$candidate/bin/java" ] || continue
  major=$("$candidate/bin/java" -XshowSettings:properties -version 2>&1 \
          | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')
  if [ "${major:-0}" -ge 24 ]; then java_home="$candidate"; break; fi
done
if [ -z "$java_home" ]; then
  echo "infra/trino/install.sh: no Java 24+ found (Trino $VERSION needs it); Trino not installed." \
       "Install a JDK 25 (e.g. Temurin) and set VITALFLOW_TRINO_JAVA_HOME, then run this again." >&2
  exit 0
fi
if ! command -v mvn >/dev/null; then
  echo "infra/trino/install.sh: Maven (mvn) is missing: apt-get install -y maven" >&2
  exit 1
fi
mkdir -p "$CACHE"
chmod 700 "$CACHE"
# The artifact lands in a Maven repository inside the cache, so it is downloaded (and kept) once.
mvn -q -B -Dmaven.repo.local="$CACHE/m2" \
  org.apache.maven.plugins:maven-dependency-plugin:3.6.1:get \
  -Dartifact="io.trino:trino-server:$VERSION:tar.gz" -Dtransitive=false
archive="$CACHE/m2/io/trino/trino-server/$VERSION/trino-server-$VERSION.tar.gz"
rm -rf "$SERVER.partial"
mkdir -p "$SERVER.partial"
# The full server is ~800 MB with ~50 plugins (sharing jars through hard links, so it is
# unpacked whole first); only the plugins used are kept, and fewer plugins also start faster.
tar -xzf "$archive" -C "$SERVER.partial"
unpacked="$SERVER.partial/trino-server-$VERSION"
mkdir -p "$SERVER.partial/plugin"
mv "$unpacked/bin" "$unpacked/lib" "$SERVER.partial/"
for plugin in $PLUGINS; do mv "$unpacked/plugin/$plugin" "$SERVER.partial/plugin/"; done
rm -rf "$unpacked"
echo "$java_home" > "$SERVER.partial/.java-home"
echo "$PLUGINS" > "$SERVER.partial/.vitalflow-complete"
rm -rf "$SERVER"
mv "$SERVER.partial" "$SERVER"
echo "Trino $VERSION installed in $SERVER (Java: $java_home)"
