#!/usr/bin/env bash
# Build the API reference from the docstrings into docs/api/ (not committed; open
# docs/api/index.html). Any pdoc warning (an annotation it cannot resolve, a module that fails
# to import) is an error, so CI catches docs that would silently render wrong.
# Documented: the public surface (the logmq facade with everything it exports, errors, types,
# logmq.aio, logmq.testing, the small wire client); internals are read in the source.
# Usage: tools/build_docs.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/api}"
rm -rf "$out"
modules=(logmq logmq.types logmq.aio logmq.testing logmq.testing.pytest_plugin logmq.client)
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python3 -W error::UserWarning -m pdoc \
  --docformat restructuredtext --no-show-source -o "$out" "${modules[@]}"
for m in "${modules[@]}" logmq.errors; do  # (logmq's __all__ brings logmq.errors)
  page="$out/${m//.//}.html"
  if [ ! -s "$page" ]; then
    echo "build_docs: no page for $m ($page)" >&2
    exit 1
  fi
done
echo "API reference in $out/index.html"
