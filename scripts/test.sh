#!/usr/bin/env bash
# One command from a fresh clone to a green (or red) test run:
#   creates .venv if missing, installs the project with its test extra, runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k dice).
# pytest's exit code 5 ("no tests ran") is turned into a failure: an empty run is not green.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Install only when pyproject.toml changed since the last install (a stamp in .venv records it).
stamp=".venv/.installed-test-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
  rm -f .venv/.installed-test-* && touch "$stamp"
fi
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$rc"
