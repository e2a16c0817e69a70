#!/usr/bin/env bash
# One command from a fresh clone to a green (or red) test run:
#   creates .venv if missing, installs the project with its test extra and (as root, from the
#   distribution's packages) PostgreSQL's server and Chromium when they are missing, then
#   1. lints with ruff (`ruff check .`, rules in pyproject.toml),
#   2. type-checks bot/ and cogs/ with mypy (strict; settings in pyproject.toml),
#   3. runs pytest.
# A lint or type error fails the run before the tests start (both checks run, so one run shows both).
# Extra arguments go to pytest (e.g. scripts/test.sh -k dice).
# pytest's exit code 5 ("no tests ran") is turned into a failure: an empty run is not green.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
ensure_venv test
# install_missing PACKAGE WHAT HINT: the distribution's PACKAGE (as root, or with sudo), or stop with HINT.
install_missing() {
  local as_root=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && as_root="sudo -n"
  if command -v apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || [ -n "$as_root" ]; }; then
    echo "scripts/test.sh: installing $2 (the distribution's $1 package)" >&2
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null 2>&1 \
      || { $as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1"; }
  else
    echo "scripts/test.sh: $2 is missing: install the $1 package ($3)" >&2
    exit 1
  fi
}
# PostgreSQL's server binaries: the store and game suites also run on PostgreSQL, which the tests start
# themselves on 127.0.0.1 (tests/support/postgres.py).
if [ -z "${POSTGRES_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  install_missing postgresql "PostgreSQL's server" "or set POSTGRES_BIN to its bin folder"
fi
# Chromium for the journal's browser tests (Playwright drives it with executable_path; browsers are
# never downloaded by Playwright itself).
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  install_missing chromium Chromium "or set CHROMIUM to a Chromium binary"
fi
set +e
.venv/bin/python -m ruff check .
ruff_rc=$?
.venv/bin/python -m mypy
mypy_rc=$?
set -e
if [ "$ruff_rc" -ne 0 ] || [ "$mypy_rc" -ne 0 ]; then
  echo "scripts/test.sh: ruff exit $ruff_rc, mypy exit $mypy_rc; fix them before the tests run" >&2
  exit 1
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
