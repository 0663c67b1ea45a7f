#!/usr/bin/env bash
# Set up .venv when needed and run the whole test suite. Arguments go to pytest.
#
# Tests that need PostgreSQL (127.0.0.1:5432), Redis (127.0.0.1:6379), Node.js or chromium
# skip with the reason when those are missing, except under CI=true, where they fail.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi

# Reinstall only when the package metadata changed since the last install.
marker=.venv/.flask-federation-installed
if [ ! -f "$marker" ] || [ setup.cfg -nt "$marker" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test,lint,docs]'
    touch "$marker"
fi

exec .venv/bin/python -m pytest "$@"
