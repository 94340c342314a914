#!/usr/bin/env bash
# Fuzzing beyond the pytest run: atheris on the codec and the produce validator (20 s each),
# then 100,000 mutated frames against `logmq serve` (tools/fuzz_wire.py, ~1-2 min).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
python3 -m pip install -q -e '.[fuzz]'
for target in codec validator batch; do
  python3 tools/fuzz_atheris.py "$target" -max_total_time=20 -rss_limit_mb=2048
done
python3 tools/fuzz_wire.py --cases 100000 --seed "${FUZZ_SEED:-1}"
