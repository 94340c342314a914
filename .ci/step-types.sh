#!/bin/sh
# Static checks of the type hints (config in pyproject.toml [tool.mypy]) and the generated
# Kafka vocabulary. Run from the repository root.
set -eu
mypy logmq
python tools/gen_kafka_codes.py --check
