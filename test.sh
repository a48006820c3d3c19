#!/usr/bin/env bash
# Install everything the checks need into .venv, then lint, type-check and run the whole test suite.
# PostgreSQL/Redis tests run when DATABASE_URL / REDIS_URL point at them (.ci/run sets both), else they skip.
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
