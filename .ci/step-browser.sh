#!/usr/bin/env bash
# The dashboard in a real browser: Debian's chromium driven by playwright-core (npm, no browser
# download). Loads `logmq serve --http`'s page while a producer runs, checks the figures move,
# saves artifacts/browser/dashboard.png. Needs the Python test deps (`.ci/run` installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
  apt-get update -qq >/dev/null && apt-get install -y -qq nodejs npm >/dev/null
fi
(cd tests/browser && npm ci --no-audit --no-fund --silent)
export ARTIFACTS="${ARTIFACTS:-$PWD/artifacts}"
timeout 600 python3 tests/browser/run_dashboard.py
echo "dashboard screenshot: $ARTIFACTS/browser/dashboard.png"
