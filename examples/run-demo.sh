#!/usr/bin/env bash
# Set up .venv, create a fresh SQLite demo database with seeded data, print the
# demo keys with ready-to-paste curl lines, and serve the example host app on
# http://127.0.0.1:5000, or on the port in PORT. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .

port=${PORT:-5000}
base_url="http://127.0.0.1:$port"

mkdir -p examples/instance
export FLASK_APP=examples/host_app/app.py:create_app
export DATABASE_URL="sqlite:///$PWD/examples/instance/demo.db"
rm -f examples/instance/demo.db

.venv/bin/flask federation init-db
.venv/bin/flask init-host-db
.venv/bin/flask federation seed-demo --base-url "$base_url"
echo
echo "Host route reusing the provider guard: curl -H 'Authorization: Bearer <provider key>' $base_url/partner/announcements"
echo "OpenAPI document: $base_url/federation/openapi.json"
exec .venv/bin/flask run --host 127.0.0.1 --port "$port"
