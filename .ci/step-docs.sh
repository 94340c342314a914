#!/usr/bin/env bash
# CI step: the API reference builds from the docstrings with no warnings (pdoc, test extra).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build_docs.sh "${TMPDIR:-/tmp}/logmq-api-docs"
