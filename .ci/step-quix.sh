#!/bin/sh
# README's Quix Streams example: quixstreams pins confluent-kafka <2.13 while the test suite
# needs 2.16 (ShareConsumer), so it gets a venv of its own that sees everything else installed.
# Run from the repository root.
set -eu
venv="${LOGMQ_QUIX_VENV:-${TMPDIR:-/tmp}/logmq-quix-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q 'quixstreams>=3.10' 'confluent-kafka<2.13'
"$venv/bin/python" -c 'import confluent_kafka, quixstreams; print("quix venv: confluent-kafka", confluent_kafka.__version__, "quixstreams", quixstreams.__version__)'
"$venv/bin/python" -m pytest -q -m quix tests/test_readme.py
