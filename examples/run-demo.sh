#!/usr/bin/env bash
# Set up .venv, create a fresh SQLite demo database with seeded data, print the
# demo keys with ready-to-paste curl lines, and serve the example host app on
# http://127.0.0.1:5000 (or the port in PORT). Stop it with Ctrl-C.
#
# The database is created in DEMO_INSTANCE_DIR (default examples/instance) and
# replaced on every run.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi

# Install only when neither this script nor scripts/test.sh installed the package
# since setup.cfg last changed.
demo_marker=.venv/.flask-federation-demo-installed
test_marker=.venv/.flask-federation-installed
if { [ ! -f "$demo_marker" ] || [ setup.cfg -nt "$demo_marker" ]; } \
    && { [ ! -f "$test_marker" ] || [ setup.cfg -nt "$test_marker" ]; }; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e .
    touch "$demo_marker"
fi

instance_dir=${DEMO_INSTANCE_DIR:-examples/instance}
mkdir -p "$instance_dir"
instance_dir=$(cd "$instance_dir" && pwd)
port=${PORT:-5000}
base_url="http://127.0.0.1:$port"
export FLASK_APP=examples/host_app/app.py:create_app
export DATABASE_URL="sqlite:///$instance_dir/demo.db"
rm -f "$instance_dir/demo.db"

.venv/bin/flask federation init-db
.venv/bin/flask init-host-db
.venv/bin/flask federation seed-demo --base-url "$base_url"
echo
echo "Host route reusing the provider guard: curl -H 'Authorization: Bearer <provider key>' $base_url/partner/announcements"
echo "OpenAPI document: $base_url/federation/openapi.json"
echo "API reference: $base_url/federation/docs"
exec .venv/bin/flask run --host 127.0.0.1 --port "$port"
