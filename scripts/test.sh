#!/usr/bin/env bash
# One command from a fresh clone to a green (or red) test run:
#   creates .venv if missing, installs the project with its test extra, runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k dice).
# pytest's exit code 5 ("no tests ran") is turned into a failure: an empty run is not green.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
ensure_venv test
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$rc"
