"""gunicorn settings for production (``gunicorn -c gunicorn_config.py wsgi:app``).

``preload_app`` stays False: each worker imports the app after the fork and loads every
bundled ONNX model in the background as it starts (ONNX Runtime's thread pools are not
fork-safe), so ``/readyz`` turns 200 per worker once its models are in. Migrations run once in
the master before workers start, so workers never race each other on ``alembic upgrade``.
"""

from __future__ import annotations

import os

# Own names, so a HOST/PORT in .env never moves the development server (app.py) off localhost.
bind = f"{os.environ.get('GUNICORN_HOST') or '0.0.0.0'}:{os.environ.get('GUNICORN_PORT') or '8000'}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
preload_app = False
# A worker stuck on one request longer than this is restarted (the request answers 502 at the proxy).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
# Idle keep-alive connections are closed after this many seconds, so they cannot pile up on threads.
# Slow request bodies are the proxy's job (deploy/nginx): gunicorn has no body-read timeout of its own.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Uploads can be up to MAX_UPLOAD_MB; request lines and headers stay small.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = None  # the app writes one structured line per request itself
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def on_starting(server: object) -> None:
    """Migrate once in the master, then tell the workers not to."""
    from config import build_config, check_rate_limit_storage, load_dotenv_file

    load_dotenv_file()
    settings = build_config()
    check_rate_limit_storage(settings)  # a clear error before any worker starts
    if settings["AUTO_MIGRATE"]:
        from database.migrate import upgrade

        upgrade(settings["DATABASE_URL"])
    os.environ["AUTO_MIGRATE"] = "false"
