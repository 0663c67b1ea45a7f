#!/usr/bin/env bash
# Serve the example host app as a production deployment would (gunicorn with two sync
# workers, PostgreSQL, Redis), seed it with demo data, and run
# `flask federation smoke --mode write` against it. Exits non-zero when a check fails.
#
# Needs .venv (`bash scripts/test.sh --version` creates it), PostgreSQL on 127.0.0.1:5432
# with a `postgres` role (password in PGPASSWORD, if it has one), and Redis on 127.0.0.1:6379.
#
# SMOKE_DATABASE (default `smoke`) is dropped and created again on every run.
# Rate-limit counters go to Redis database 12 and idempotency keys to database 11,
# under a key prefix of this run alone, deleted when the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."

database=${SMOKE_DATABASE:-smoke}
if [[ ! $database =~ ^[a-z_][a-z0-9_]*$ ]]; then
    echo "SMOKE_DATABASE must be a plain lowercase database name, got '$database'." >&2
    exit 2
fi

python=.venv/bin/python
workdir=$(mktemp -d)
run_id="smoke-$(date +%s)-$$"
gunicorn_pid=""

cleanup() {
    local status=$?
    if [ -n "$gunicorn_pid" ] && kill -0 "$gunicorn_pid" 2>/dev/null; then
        kill -TERM "$gunicorn_pid"
        # The arbiter waits for its workers for up to --graceful-timeout seconds.
        for _ in $(seq 1 100); do
            kill -0 "$gunicorn_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$gunicorn_pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$workdir/gunicorn.log" ]; then
        echo "--- gunicorn log ---" >&2
        tail -n 50 "$workdir/gunicorn.log" >&2
    fi
    "$python" - "$run_id" <<'PYTHON' || true
import sys

import redis

# The Redis databases are shared with other runs, so only this run's keys are deleted.
for url in ("redis://127.0.0.1:6379/12", "redis://127.0.0.1:6379/11"):
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{sys.argv[1]}*"):
        client.delete(key)
    client.close()
PYTHON
    rm -rf "$workdir"
    exit "$status"
}
trap cleanup EXIT
trap "exit 130" INT TERM

dropdb -h 127.0.0.1 -U postgres --if-exists --force "$database"
createdb -h 127.0.0.1 -U postgres "$database"

export FLASK_APP=examples/host_app/app.py:create_app
export DATABASE_URL="postgresql+psycopg://postgres${PGPASSWORD:+:$PGPASSWORD}@127.0.0.1:5432/$database"
SECRET_KEY=$("$python" -c 'import secrets; print(secrets.token_urlsafe(32))')
export SECRET_KEY
# Several workers need shared counters and keys: memory:// would count per process.
export FEDERATION_RATELIMIT_STORAGE_URI=redis://127.0.0.1:6379/12
export FEDERATION_RATELIMIT_KEY_PREFIX="$run_id"
export FEDERATION_IDEMPOTENCY_STORE=redis://127.0.0.1:6379/11
export FEDERATION_IDEMPOTENCY_REDIS_PREFIX="$run_id:idempotency:"

.venv/bin/flask federation init-db
.venv/bin/flask init-host-db

gunicorn_options=(--workers 2 --worker-class sync --bind 127.0.0.1:0 --timeout 30 --graceful-timeout 5)
if .venv/bin/gunicorn --help | grep -q -- --no-control-socket; then
    # Where gunicorn has a control socket (27.0 has), it sits in the home directory, shared by parallel runs.
    gunicorn_options+=(--no-control-socket)
fi
.venv/bin/gunicorn "${gunicorn_options[@]}" examples.host_app.wsgi:app > "$workdir/gunicorn.log" 2>&1 &
gunicorn_pid=$!

# Port 0 lets the kernel pick a free port; gunicorn logs the address it listens on.
base_url=""
for _ in $(seq 1 150); do
    base_url=$(grep -o -m 1 'Listening at: http://127\.0\.0\.1:[0-9]*' "$workdir/gunicorn.log" | sed 's/^Listening at: //' || true)
    [ -n "$base_url" ] && break
    kill -0 "$gunicorn_pid" 2>/dev/null || { echo "gunicorn exited before it listened." >&2; exit 1; }
    sleep 0.1
done
if [ -z "$base_url" ]; then
    echo "gunicorn did not listen within 15 seconds." >&2
    exit 1
fi
echo "gunicorn (2 sync workers) serves the example host app at $base_url"

.venv/bin/flask federation seed-demo --providers 2 --tenants 50 --developers 1 --base-url "$base_url" --json \
    > "$workdir/seed.json"
# The keys reach the runner through the environment only; they are never printed.
eval "$("$python" - "$workdir/seed.json" <<'PYTHON'
import json
import shlex
import sys

with open(sys.argv[1], encoding="utf-8") as seed:
    environment = json.load(seed)["smoke_environment"]
for name, value in environment.items():
    print(f"export {name}={shlex.quote(value)}")
PYTHON
)"

.venv/bin/flask federation smoke --base-url "$base_url" --mode write --timeout 10
