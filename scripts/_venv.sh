# Sourced by run.sh, test.sh and bench.sh: create .venv if missing and install the project into it,
# only when pyproject.toml changed since the last install (a stamp in .venv records it).
#   ensure_venv ""      the bot alone (a test install, a superset, counts too)
#   ensure_venv test    the bot with its test extra
ensure_venv() {
  local extra=$1 hash stamp
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
  fi
  hash=$(sha256sum pyproject.toml | cut -c1-16)
  stamp=".venv/.installed-${extra:-run}-$hash"
  if [ -f "$stamp" ] || { [ -z "$extra" ] && [ -f ".venv/.installed-test-$hash" ]; }; then
    return 0
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra:+[$extra]}"
  rm -f .venv/.installed-"${extra:-run}"-* && touch "$stamp"
}
