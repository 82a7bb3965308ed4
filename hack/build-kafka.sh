#!/usr/bin/env bash
# Apache Kafka (broker + KRaft controller, one JVM) for the Kafka event source's tests
# and bench: the runtime classpath of org.apache.kafka:kafka_2.13 from Maven Central,
# resolved by `mvn dependency:copy-dependencies` from hack/kafka/pom.xml and cached
# under a directory keyed by the Kafka version and the pom's hash, so a second run
# resolves nothing. No distribution tarball: Maven Central is the registry reached here.
#
# Usage: hack/build-kafka.sh          -> prints the cache directory (libs/ holds the jars)
#        hack/build-kafka.sh --check  -> the same if it is built, else names `make kafka`
#          and exits 1; never builds (tests/kafka/broker.py locates the broker this way).
set -euo pipefail

# shellcheck source=hack/check-mode.sh
source "$(dirname "${BASH_SOURCE[0]}")/check-mode.sh"
if [ "${#CHECK_ARGS[@]}" -gt 0 ]; then echo "usage: $0 [--check]" >&2; exit 2; fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
CACHE_ROOT="${LAMBDAKUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lambdakube}"
POM_HASH="$(cat "$HERE/kafka/pom.xml" "$HERE/kafka/log4j2.properties" | sha1sum | cut -c1-10)"
DIR="$CACHE_ROOT/kafka-${KAFKA_VERSION}-${POM_HASH}"

log() { echo "[build-kafka] $*" >&2; }

built() { [ -f "$DIR/libs/kafka_2.13-${KAFKA_VERSION}.jar" ] && [ -f "$DIR/log4j2.properties" ]; }

if built; then
  echo "$DIR"
  exit 0
fi
if [ "$CHECK_ONLY" = 1 ]; then
  log "Kafka $KAFKA_VERSION is not built (in $DIR): run \`make kafka\` first (under a minute, then cached)"
  exit 1
fi
command -v mvn >/dev/null || { log "mvn (Maven) is required: apt-get install maven"; exit 1; }
command -v java >/dev/null || { log "java (17 or newer) is required: apt-get install default-jre-headless"; exit 1; }

mkdir -p "$CACHE_ROOT"
WORK="$(mktemp -d "$CACHE_ROOT/.kafka-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log "resolving kafka_2.13 $KAFKA_VERSION with Maven"
mvn -q -B -Dstyle.color=never -f "$HERE/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$WORK/libs" >&2
cp "$HERE/kafka/log4j2.properties" "$WORK/log4j2.properties"
# Atomic from the readers' side (a rename on one filesystem): whole or not at all.
rm -rf "$DIR"
mv "$WORK" "$DIR"
trap - EXIT
echo "$DIR"
