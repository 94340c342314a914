#!/usr/bin/env bash
# Differential suite: every interop client against a real Apache Kafka 4.4 (assembled from
# Maven Central by tools/kafka_oracle.py) and against `logmq serve`; Kafka's CLI tools too.
# Installs what it needs on a fresh machine, then writes build/compat-matrix.md.
# Budget: ~15 min cold (downloads), ~4 min warm.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 CI="${CI:-true}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
t0=$(date +%s)

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jdk-headless)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || need_apt+=(golang-go)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq >/dev/null && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
export PATH="$PATH:/usr/local/go/bin"
# the Python clients (.ci/run installs them before calling this step; alone, install them here)
python3 -c 'import logmq, confluent_kafka, kafka, aiokafka, pytest' 2>/dev/null \
  || python3 -m pip install -q -e '.[test,compression]'

# Apache Kafka 4.4.0 broker + tools jars (cached in ~/.m2 and ~/.cache/logmq-oracle)
python3 tools/kafka_oracle.py fetch
# the interop client programs (each step is a no-op when its directory is absent)
if [ -f interop/java/pom.xml ]; then
  mvn -q -B -f interop/java/pom.xml package -DskipTests
fi
if [ -f interop/js/package.json ]; then
  (cd interop/js && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ -f interop/go/go.mod ]; then
  (cd interop/go && go build -o bin/scenario .)
fi
echo "step-oracle: tools ready in $(( $(date +%s) - t0 ))s"

mkdir -p build
rm -f build/oracle-results.json
export LOGMQ_ORACLE_RESULTS="$PWD/build/oracle-results.json"
# ~15 min warm on 2 cores: differential, CLI, KIP-848, share groups, SASL, ACLs, cluster mode
timeout 2400 python3 -m pytest -q -m oracle tests/oracle -p no:cacheprovider
python3 tools/compat_matrix.py --results build/oracle-results.json > build/compat-matrix.md
echo "step-oracle: done in $(( $(date +%s) - t0 ))s (matrix: build/compat-matrix.md)"
