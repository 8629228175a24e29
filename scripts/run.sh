#!/usr/bin/env bash
# `make run`: set up the runtime and serve on http://127.0.0.1:5000 through gunicorn (one
# process, the embedded defaults: SQLite in instance/, bundled models). Ctrl-C stops it.
# HOST, PORT and WEB_CONCURRENCY move it; everything else comes from .env (see .env.example).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export GUNICORN_HOST="${HOST:-127.0.0.1}" GUNICORN_PORT="${PORT:-5000}"
export WEB_CONCURRENCY="${WEB_CONCURRENCY:-1}"
echo "==> serving on http://${GUNICORN_HOST}:${GUNICORN_PORT} (Ctrl-C stops); models load in the background, /readyz says when"
exec .venv/bin/gunicorn -c gunicorn_config.py wsgi:app
