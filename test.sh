#!/usr/bin/env bash
# Install everything the checks need into .venv, then lint, type-check and run the whole test suite.
# PostgreSQL/Redis tests run when DATABASE_URL / REDIS_URL point at them (.ci/run sets both), else they skip. Both
# must be scratch: the tests recreate DATABASE_URL's schema and flush REDIS_URL's database.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
# pytest exits 5 when it collected nothing: set -e turns that into a failure too.
# Two workers (the machine has two cores; most tests wait on subprocesses and sockets); tests that share the
# PostgreSQL database or Redis stay together in one worker (tests/conftest.py).
.venv/bin/python -m pytest -q -n 2 --dist loadgroup "$@"
# The whole run (no arguments) ends with the load benchmark in its smallest mode, every phase for a second: after the
# tests rather than beside them, as it starts several bot processes at once (bot start-ups in parallel tests then
# missed their 30 s). Its figures are not checked; that it runs is.
# 100 participants, not fewer: with 30, each wrote ~20 messages in the 1 s closed loop alone and the bot's flood
# throttle (a burst of 20, then 2 a second) dropped the paced phase's updates — 53 waits of 5 s, 4.5 minutes.
if [ $# -eq 0 ]; then
  .venv/bin/python bench/load.py --seconds 1 --paced-seconds 1 --participants 100 --notify 20 | tail -n 1
fi
