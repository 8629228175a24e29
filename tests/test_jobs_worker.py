"""The real worker process (``huey_consumer worker.huey``) on Redis and on the SQLite queue.

A job whose worker died after two items (its queue message gone with it) is resumed when a
worker starts again: the two stored items are kept as they are and the rest are analysed.
A job queued while the worker runs is picked up as usual. The worker is the real consumer
process with the bundled models, against the test database and Redis DB 4.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
REDIS_URL = os.environ.get("TEST_JOBS_REDIS_URL", "redis://127.0.0.1:6379/4")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MODELS / "text" / "card.json").is_file(), reason="the text model is not bundled"),
]


def redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")


def start_worker(app: Any) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "DATABASE_URL": app.config["DATABASE_URL"],
        "INSTANCE_DIR": app.config["INSTANCE_DIR"],
        "JOBS_DIR": app.config["JOBS_DIR"],
        "JOBS_BROKER_URL": app.config["JOBS_BROKER_URL"],
        "MODELS_DIR": str(MODELS),
        "SECRET_KEY": app.config["SECRET_KEY"],
        "AUTO_MIGRATE": "false",
        "PRELOAD_MODELS": "true",
    }
    command = [str(Path(sys.executable).parent / "huey_consumer"), "worker.huey", "--workers", "1", "--quiet"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_until_done(api: Api, job_id: int, worker: subprocess.Popen[bytes], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get(f"/api/jobs/{job_id}").get_json()
        if status["status"] == "done":
            return status
        if worker.poll() is not None:
            pytest.fail("the worker exited: " + (worker.stdout.read() if worker.stdout else b"").decode()[-2000:])
        time.sleep(0.2)
    pytest.fail(f"the job did not finish in {timeout} s: {status}")


def stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("broker", ["redis", "sqlite"])
def test_a_job_survives_a_worker_restart_and_new_jobs_are_picked_up(app_factory: Any, broker: str) -> None:
    from app import build_registry
    from services.jobs import run_job
    from services.queue import get_huey

    if broker == "redis":
        redis_or_skip()
    app = app_factory(
        {"JOBS_BROKER_URL": REDIS_URL if broker == "redis" else "", "MODELS_DIR": str(MODELS)},
        registry_override=build_registry(MODELS),
    )
    get_huey(app).flush()
    api = Api(app.test_client())
    api.register()
    texts = "id,text\n" + "".join(f"t{i},{line}\n" for i, line in enumerate(["I am thrilled", "This is awful"] * 3))
    job = api.post("/api/jobs", data={"file": (io.BytesIO(texts.encode()), "t.csv")}).get_json()
    assert job["status"] == "queued"

    run_job(app, job["id"], max_items=2)  # a worker stored two items, then died with the message
    get_huey(app).flush()
    before = api.get(f"/api/jobs/{job['id']}/results.csv").get_data(as_text=True)
    assert api.get(f"/api/jobs/{job['id']}").get_json()["done"] == 2

    worker = start_worker(app)
    try:
        status = wait_until_done(api, job["id"], worker)
        assert status["done"] == 6 and status["failed"] == 0
        rows = list(csv.DictReader(io.StringIO(api.get(f"/api/jobs/{job['id']}/results.csv").get_data(as_text=True))))
        assert [r["name"] for r in rows] == [f"t{i}" for i in range(6)]
        kept = list(csv.DictReader(io.StringIO(before)))
        assert rows[:2] == kept  # the items stored before the restart were not analysed again
        assert api.get("/api/predictions").get_json()["total"] == 6

        second = api.post("/api/jobs", data={"file": (io.BytesIO(b"text\nwhat a lovely day\n"), "t.csv")})
        assert wait_until_done(api, second.get_json()["id"], worker)["done"] == 1
    finally:
        stop(worker)
    assert worker.returncode is not None
