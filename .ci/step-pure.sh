#!/usr/bin/env bash
# The codec, storage, server and share-group tests again with the pure-Python codec and queue
# loops (LOGMQ_PURE=1): the reference implementations must keep passing what the native
# cores pass.
# Usage: bash .ci/step-pure.sh   (from a checkout where `pip install -e .` was run)
set -euo pipefail
cd "$(dirname "$0")/.."
export LOGMQ_PURE=1
impl=$(python3 -c 'import logmq.codec as c; print(c.implementation)')
if [ "$impl" != python ]; then
  echo "step-pure: LOGMQ_PURE=1 did not select the pure codec (got $impl)" >&2
  exit 1
fi
impl=$(python3 -c 'from logmq.broker.queues import hot; print(hot.implementation)')
if [ "$impl" != python ]; then
  echo "step-pure: LOGMQ_PURE=1 did not select the pure share-group loops (got $impl)" >&2
  exit 1
fi
shopt -s nullglob
files=(tests/test_codec*.py tests/test_storage*.py tests/test_server*.py tests/test_wire*.py
       tests/test_protocol*.py tests/test_validat*.py tests/test_crash*.py
       tests/test_cleaner*.py tests/test_idempotence*.py tests/test_queue*.py
       tests/test_share_wire*.py tests/test_serve_queues.py tests/test_producer_fast.py)
python3 -m pytest -q -p no:cacheprovider "${files[@]}"
