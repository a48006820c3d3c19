#!/usr/bin/env bash
# Install the bot into .venv and run its main job on the embedded default (SQLite + demo data):
# the console chat when no BOT_TOKEN is set, Telegram long polling when one is.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
if [ -n "${BOT_TOKEN:-}" ] || grep -qsE '^BOT_TOKEN=.+' .env; then
  exec .venv/bin/prakerja-bot run "$@"
fi
exec .venv/bin/prakerja-bot chat "$@"
