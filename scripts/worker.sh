#!/usr/bin/env bash
# The batch-job worker (Huey consumer): one process, one thread by default, models loaded once.
# Settings come from the environment / .env like the web app (JOBS_BROKER_URL picks the queue).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/huey_consumer worker.huey --workers "${JOBS_WORKERS:-1}" "$@"
