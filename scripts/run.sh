#!/usr/bin/env bash
# `make run`: set up the runtime and serve on http://127.0.0.1:5000 through gunicorn (one
# process, the embedded defaults: SQLite in instance/, bundled models), with the batch-job
# worker (scripts/worker.sh, a SQLite queue in instance/) running beside it. Ctrl-C stops both.
# HOST, PORT and WEB_CONCURRENCY move it; everything else comes from .env (see .env.example).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export GUNICORN_HOST="${HOST:-127.0.0.1}" GUNICORN_PORT="${PORT:-5000}"
export WEB_CONCURRENCY="${WEB_CONCURRENCY:-1}"
# The database is migrated before either process starts, so they never race on it.
.venv/bin/python -c "from config import build_config, load_dotenv_file; load_dotenv_file(); \
from database.migrate import upgrade; s = build_config(); s['AUTO_MIGRATE'] and upgrade(s['DATABASE_URL'])"
export AUTO_MIGRATE=false

scripts/worker.sh &
worker=$!
gunicorn_pid=""
stop() {
    trap - INT TERM EXIT
    [[ -n "$gunicorn_pid" ]] && kill -TERM "$gunicorn_pid" 2>/dev/null || true
    kill -INT "$worker" 2>/dev/null || true
    wait 2>/dev/null || true
    exit "${1:-0}"
}
trap stop INT TERM EXIT

echo "==> serving on http://${GUNICORN_HOST}:${GUNICORN_PORT} (Ctrl-C stops); models load in the background, /readyz says when"
echo "==> batch-job worker running (pid ${worker})"
.venv/bin/gunicorn -c gunicorn_config.py wsgi:app &
gunicorn_pid=$!
# Ctrl-C runs stop (exit 0); gunicorn ending on its own (a taken port, say) passes on its status.
status=0
wait "$gunicorn_pid" || status=$?
gunicorn_pid=""
stop "$status"
