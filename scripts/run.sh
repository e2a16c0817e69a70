#!/usr/bin/env bash
# One command from a fresh clone to a running Dungeon Master:
#   creates .venv if missing, installs the project, creates .env from .env.example on first use
#   (then stops so you can fill in DISCORD_TOKEN and OPENAI_API_KEY) and runs the bot.
# Extra arguments go to `python -m bot` (default: run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
ensure_venv ""
if [ ! -f .env ] && [ -z "${DISCORD_TOKEN:-}" ]; then
  cp .env.example .env
  echo "Created .env from .env.example. Put your DISCORD_TOKEN and OPENAI_API_KEY in it, then run $0 again." >&2
  exit 1
fi
if [ "$#" -eq 0 ]; then set -- run; fi
exec .venv/bin/python -m bot "$@"
