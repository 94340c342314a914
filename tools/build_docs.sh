#!/usr/bin/env bash
# Build the API reference from the docstrings into docs/api/ (not committed; open
# docs/api/index.html). Any pdoc warning (an annotation it cannot resolve, a module that fails
# to import) is an error, so CI catches docs that would silently render wrong.
# Usage: tools/build_docs.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/api}"
rm -rf "$out"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python3 -W error::UserWarning -m pdoc \
  --docformat restructuredtext --no-show-source -o "$out" logmq
test -s "$out/logmq.html" && test -s "$out/logmq/aio.html" && test -s "$out/logmq/testing.html"
echo "API reference in $out/index.html"
