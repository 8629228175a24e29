#!/usr/bin/env bash
# The batch-job worker (Huey consumer): one process, one thread by default, models loaded once.
# Settings come from the environment / .env like the web app (JOBS_BROKER_URL picks the queue).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/huey_consumer ]; then
    echo "!! the job worker needs huey (requirements.txt); run scripts/setup.sh" >&2
    exit 1
fi
exec .venv/bin/huey_consumer worker.huey --workers "${JOBS_WORKERS:-1}" "$@"
