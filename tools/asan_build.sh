#!/usr/bin/env bash
# Build the native codec and the compiled share-group loops with AddressSanitizer in a scratch
# copy and run the differential tests and the mutation corpus through them (any out-of-bounds
# read or write aborts the run).
#
#   bash tools/asan_build.sh [CASES]      # default 20000 mutation cases (~6 min, loaded box)
#
# Needs gcc and libasan (Debian: libasan8, part of gcc). Leaves nothing behind but its
# scratch directory in $TMPDIR (removed on exit). Exit status 0 means no ASan report.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-20000}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/logmq-asan.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp -r logmq tests tools setup.py pyproject.toml "$scratch"/
find "$scratch/logmq" -name '*.so' -delete -o -name '_native.c' -delete \
  -o -name '_native_queue.c' -delete -o -name '_native_send.c' -delete
# the build tools pyproject.toml asks for, beside the scratch copy (a system setuptools older
# than 77 rejects its SPDX license field; pip's isolated builds fetch them the same way)
python3 -m pip install -q --target "$scratch/.build-tools" 'setuptools>=77,<85' 'Cython>=3,<4' \
  >/dev/null
(
  cd "$scratch"
  PYTHONPATH="$scratch/.build-tools" LOGMQ_REQUIRE_NATIVE=1 \
  LOGMQ_NATIVE_CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g -O1" \
  LOGMQ_NATIVE_LDFLAGS="-fsanitize=address" \
    python3 setup.py -q build_ext --inplace >build.log 2>&1 || { cat build.log; exit 1; }
)
libasan=$(gcc -print-file-name=libasan.so)
for so in "$scratch"/logmq/codec/_native*.so "$scratch"/logmq/broker/queues/_native_queue*.so \
    "$scratch"/logmq/broker/_native_send*.so; do
  [ -e "$so" ] || { echo "asan_build: an extension was not built ($so)" >&2; exit 1; }
  ldd "$so" | grep libasan >/dev/null || { echo "asan_build: $so is not linked with libasan" >&2; exit 1; }
done
# malloc instead of pymalloc so every Python buffer has its own redzone; leaks are the
# interpreter's at exit, not ours
cd "$scratch"
export PYTHONMALLOC=malloc LD_PRELOAD="$libasan" PYTHONPATH="$scratch"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
python3 -c "import logmq.codec._native as n, sys; assert n.__file__.startswith('$scratch'), n.__file__"
python3 -c "import logmq.broker.queues._native_queue as n; assert n.__file__.startswith('$scratch'), n.__file__"
python3 -c "import logmq.broker._native_send as n; assert n.__file__.startswith('$scratch'), n.__file__"
# canary: this setup must catch a 1-byte over-read of the exact buffers the corpus uses
if (ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 python3 -c "
import ctypes, sys; sys.path.insert(0, 'tools'); from native_mutate import exact
b = exact(b'x' * 24); ctypes.string_at(b.buffer_info()[0], 25)") >/dev/null 2>&1; then
  echo "asan_build: ASan did not catch the canary over-read; the run would prove nothing" >&2
  exit 1
fi
echo "asan_build: canary over-read caught, ASan is live"
python3 -m pytest -q -p no:cacheprovider tests/test_native_codec.py tests/test_native_keys.py tests/test_producer_fast.py \
  tests/test_native_validate_walk.py tests/test_codec_records.py tests/test_queue_native.py \
  tests/test_queue_ranges.py tests/test_queue_basic.py
python3 tools/native_mutate.py --cases "$cases"
echo "asan_build: no AddressSanitizer report"
