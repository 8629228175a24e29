#!/usr/bin/env bash
# Set up the test tools and run the whole suite: lint, unit, API (SQLite + MariaDB),
# real-model and headless-Chromium end-to-end tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev

# MariaDB/MySQL for the database tests: start the local server when it is installed but down.
if command -v mariadb >/dev/null 2>&1 && ! mariadb -uroot -h127.0.0.1 -e 'select 1' >/dev/null 2>&1; then
  if [ -x /usr/sbin/mariadbd ] && command -v start-stop-daemon >/dev/null 2>&1; then
    echo "==> starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
    for _ in $(seq 1 30); do
      mariadb -uroot -h127.0.0.1 -e 'select 1' >/dev/null 2>&1 && break
      sleep 1
    done
  fi
fi

echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
