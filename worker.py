"""The batch-job worker: ``huey_consumer worker.huey`` (scripts/worker.sh, compose's ``worker``).

It builds the app once from the environment (same settings as the web process, so the same
queue and database), waits until every bundled model is loaded (once per worker process),
and on start re-queues the jobs a stopped worker left queued or running: their stored items
are skipped, so a restart loses at most the item that was in flight.
"""

from __future__ import annotations

import logging

from app import create_app
from services import jobs, queue
from services.analysis import get_registry

app = create_app()
huey = queue.get_huey(app)
log = logging.getLogger("moodlens.worker")


@huey.on_startup()
def _load_models_and_resume() -> None:
    registry = get_registry(app)
    registry.wait_until_loaded(timeout=600)
    for job_id in jobs.unfinished_job_ids(app):
        log.info("event=job_resumed job_id=%s", job_id)
        queue.enqueue(app, job_id)
