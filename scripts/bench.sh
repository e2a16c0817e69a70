#!/usr/bin/env bash
# The benchmarks (not part of the test run): sets up .venv with the test extra, as scripts/test.sh
# does (the scripted model server lives in tests/support), then runs `python -m bench` with the
# arguments given (--quick, --only NAME). Prints a table; writes bench/results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
ensure_venv test
exec .venv/bin/python -m bench "$@"
