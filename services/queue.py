"""The task queue that runs batch jobs outside the web process (Huey).

One queue per deployment, chosen by configuration:

- ``JOBS_BROKER_URL=redis://...`` (docker compose): a ``RedisHuey`` on the Redis compose runs;
  the ``worker`` service consumes it.
- empty (the embedded default, ``make run``): a ``SqliteHuey`` file in the instance folder;
  ``scripts/run.sh`` starts the worker beside gunicorn.
- ``JOBS_IMMEDIATE=true``: Huey's immediate mode runs each job inside the request that
  queued it (tests of the eager path, one-off scripts).

The web process and the worker build the same queue from the same settings and register the
one task, :data:`TASK_NAME`, bound to their own app (the worker's app loads the models once).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from huey import MemoryHuey, RedisHuey, SqliteHuey

log = logging.getLogger(__name__)

QUEUE_KEY = "moodlens_jobs_queue"
TASK_NAME = "moodlens.run_job"
QUEUE_NAME = "moodlens-jobs"


def build_huey(config: Any) -> Any:
    """The Huey instance the settings ask for (see the module docstring)."""
    if config.get("JOBS_IMMEDIATE"):
        return MemoryHuey(QUEUE_NAME, immediate=True)
    url = (config.get("JOBS_BROKER_URL") or "").strip()
    if url:
        return RedisHuey(QUEUE_NAME, url=url)
    folder = Path(config["INSTANCE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str(folder / "jobs-queue.db"))


def init_queue(app: Flask) -> Any:
    """Build the app's queue and register the job task on it (run for this app)."""
    huey = build_huey(app.config)

    # A job that hit a missing or still-loading model (503) is retried; stored items are skipped.
    @huey.task(name=TASK_NAME, retries=3, retry_delay=15)
    def run_job(job_id: int) -> None:
        from services.jobs import run_job as run  # services.jobs imports this module (enqueue)

        with app.app_context():
            run(app, job_id)

    app.extensions[QUEUE_KEY] = (huey, run_job)
    return huey


def get_huey(app: Flask) -> Any:
    if QUEUE_KEY not in app.extensions:
        init_queue(app)
    return app.extensions[QUEUE_KEY][0]


def enqueue(app: Flask, job_id: int) -> None:
    """Queue a job for the worker (in immediate mode: run it now)."""
    if QUEUE_KEY not in app.extensions:
        init_queue(app)
    app.extensions[QUEUE_KEY][1](job_id)
