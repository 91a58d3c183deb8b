#!/usr/bin/env bash
# Downloads the Marquez API server (io.github.marquezproject:marquez-api) and its dependencies
# from Maven Central into ~/.cache/vitalflow/marquez/<version>/lib, once. `vitalflow services up
# marquez` runs it on Java 17 against the project's PostgreSQL (docs/lineage.md).
set -euo pipefail
VERSION="${MARQUEZ_VERSION:-0.50.0}"
CACHE="${VITALFLOW_CACHE:-$HOME/.cache/vitalflow}/marquez/$VERSION"
if [[ -f "$CACHE/.complete" ]]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "marquez: Maven (mvn) is needed: apt-get install -y maven" >&2; exit 1; }
JAVA_HOME="${MARQUEZ_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
[[ -x "$JAVA_HOME/bin/java" ]] || { echo "marquez: Java 17 not found at $JAVA_HOME: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
mkdir -p "$CACHE"
chmod 700 "$CACHE"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>org.vitalflow</groupId><artifactId>marquez-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency>
      <groupId>io.github.marquezproject</groupId><artifactId>marquez-api</artifactId>
      <version>$VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
echo "marquez: resolving marquez-api $VERSION and its dependencies (once) into $CACHE"
# Lineage works without Marquez (events stay in the event file): a registry that does not serve
# marquez-api leaves the local Marquez uninstalled, not the whole install failed.
if ! JAVA_HOME="$JAVA_HOME" mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$CACHE/lib.tmp" > "$work/mvn.log" 2>&1; then
  echo "marquez: WARNING: could not resolve io.github.marquezproject:marquez-api:$VERSION" \
       "from Maven Central; \`vitalflow services up marquez\` stays unavailable:" >&2
  grep -m1 ERROR "$work/mvn.log" >&2 || true
  rm -rf "$CACHE/lib.tmp"
  exit 0
fi
rm -rf "$CACHE/lib"
mv "$CACHE/lib.tmp" "$CACHE/lib"
touch "$CACHE/.complete"
