"""Batch jobs through the API: POST /api/jobs -> 202, progress, results CSV, cancel, isolation.

These run the eager path (Huey's immediate mode: the job runs inside the POST), so each job
has finished when the 202 arrives; tests/test_jobs_worker.py runs the real worker process
against Redis and the SQLite queue. Items go through the test-double recognisers.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.clips import FACE, VOICE, make_clip
from tests.conftest import Api, assert_error

IMMEDIATE = {"JOBS_IMMEDIATE": True}


def zip_bytes(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def submit(api: Api, data: bytes, name: str = "batch.zip") -> Any:
    return api.post("/api/jobs", data={"file": (io.BytesIO(data), name)})


def results(api: Api, job_id: int) -> list[dict[str, str]]:
    response = api.get(f"/api/jobs/{job_id}/results.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


@pytest.fixture
def jobs_api(app_factory: Any) -> Api:
    api = Api(app_factory(IMMEDIATE).test_client())
    assert api.register().status_code == 201
    assert api.give_consent().status_code == 200
    return api


MIXED = {
    "photos/face.png": FACE.read_bytes(),
    "voice.wav": VOICE.read_bytes(),
    "clip.mp4": make_clip(2.0),
    "broken.jpg": b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 20,
    "notes.txt": b"just some notes, not media",
    "inner.zip": zip_bytes({"a.png": FACE.read_bytes()}),
    "../escape.png": FACE.read_bytes(),
}


def test_a_mixed_batch_stores_each_good_item_and_fails_each_bad_one_alone(jobs_api: Api) -> None:
    response = submit(jobs_api, zip_bytes(MIXED))
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert response.headers["Location"] == f"/api/jobs/{job['id']}"
    status = jobs_api.get(f"/api/jobs/{job['id']}").get_json()
    assert status["status"] == "done" and status["total"] == 7 and status["done"] == 7 and status["progress"] == 1.0
    assert status["succeeded"] == 3 and status["failed"] == 4
    assert {f["name"]: f["code"] for f in status["failures"]} == {
        "broken.jpg": "unsupported_media_type",
        "notes.txt": "unsupported_media_type",
        "inner.zip": "nested_archive",
        "../escape.png": "unsafe_name",
    }
    rows = {r["name"]: r for r in results(jobs_api, job["id"])}
    assert list(rows) == list(MIXED)
    assert rows["photos/face.png"]["emotion"] == "surprise" and rows["photos/face.png"]["kind"] == "image"
    assert rows["voice.wav"]["emotion"] == "sad" and rows["voice.wav"]["kind"] == "speech"
    assert rows["clip.mp4"]["kind"] == "video" and rows["clip.mp4"]["p_surprise"]
    assert rows["inner.zip"]["error"].startswith("nested_archive:") and rows["inner.zip"]["emotion"] == ""
    history = jobs_api.get("/api/predictions").get_json()
    assert history["total"] == 3  # each good item is a prediction of its own
    assert sorted(p["kind"] for p in history["items"]) == ["image", "speech", "video"]


def test_a_csv_of_texts_uses_the_id_column_as_the_name(jobs_api: Api) -> None:
    body = "id,text\nq1,I am so happy today\nq2,\nq3,This makes me angry\n"
    job = submit(jobs_api, body.encode(), "texts.csv").get_json()
    rows = results(jobs_api, job["id"])
    assert [(r["name"], r["emotion"]) for r in rows] == [("q1", "happy"), ("q2", ""), ("q3", "angry")]
    assert rows[1]["error"].startswith("empty_text:")


def test_texts_need_no_consent_but_media_do(app_factory: Any) -> None:
    api = Api(app_factory(IMMEDIATE).test_client())
    api.register()
    assert submit(api, b"text\nhappy days\n", "t.csv").status_code == 202
    assert_error(submit(api, zip_bytes({"face.png": FACE.read_bytes()})), 403, "consent_required")


def test_hostile_and_oversized_uploads_are_refused_with_a_clear_message(app_factory: Any) -> None:
    api = Api(app_factory({**IMMEDIATE, "JOB_MAX_ITEMS": 3}).test_client())
    api.register()
    api.give_consent()
    assert_error(submit(api, b"PK\x03\x04 this is no zip"), 422, "corrupt_archive")
    assert_error(submit(api, zip_bytes({f"{i}.png": b"x" for i in range(4)})), 413, "too_many_items")
    assert_error(submit(api, b"name,value\na,b\n", "x.csv"), 400, "invalid_csv")
    assert_error(submit(api, b""), 422, "empty_file")
    assert_error(api.post("/api/jobs", data={}), 400, "missing_file")
    bomb = zip_bytes({"zeros.png": b"\x00" * 5_000_000})
    job = submit(api, bomb).get_json()
    assert (
        job["failures"] == [{"name": "zeros.png", "code": "zip_bomb", "message": job["failures"][0]["message"]}]
        and "ZIP bomb" in job["failures"][0]["message"]
    )
    small = Api(app_factory({**IMMEDIATE, "JOB_MAX_UNPACKED_MB": 1}).test_client())
    small.register("bob@example.com")
    small.give_consent()
    assert_error(submit(small, zip_bytes({"big.wav": b"\x01" * 2_000_000}, compression=zipfile.ZIP_STORED)), 413)
    assert api.get("/api/predictions").get_json()["total"] == 0


def test_uploads_are_deleted_when_the_job_ends(jobs_api: Api, app_factory: Any) -> None:
    app = jobs_api.client.application
    submit(jobs_api, zip_bytes({"face.png": FACE.read_bytes()}))
    assert not any(p.is_file() for p in Path(app.config["JOBS_DIR"]).rglob("*"))


def test_another_users_job_is_not_found(jobs_api: Api, app_factory: Any) -> None:
    job = submit(jobs_api, b"text\nhappy\n", "t.csv").get_json()
    other = Api(jobs_api.client.application.test_client())
    other.register("eve@example.com")
    for method, url in (
        ("GET", f"/api/jobs/{job['id']}"),
        ("GET", f"/api/jobs/{job['id']}/results.csv"),
        ("DELETE", f"/api/jobs/{job['id']}"),
    ):
        assert_error(other.request(method, url), 404, "not_found")
    assert other.get("/api/jobs").get_json()["items"] == []


def test_a_queued_job_can_be_cancelled_and_then_never_runs(app_factory: Any, tmp_path: Path) -> None:
    from services.jobs import run_job

    app = app_factory({"JOBS_BROKER_URL": ""})  # the SQLite queue; no worker runs in this test
    api = Api(app.test_client())
    api.register()
    api.give_consent()
    job = submit(api, zip_bytes({"face.png": FACE.read_bytes()})).get_json()
    assert job["status"] == "queued" and job["done"] == 0
    cancelled = api.delete(f"/api/jobs/{job['id']}")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    run_job(app, job["id"])  # what a worker would do with the message
    assert api.get(f"/api/jobs/{job['id']}").get_json()["done"] == 0
    assert api.get("/api/predictions").get_json()["total"] == 0
    assert_error(api.delete(f"/api/jobs/{job['id']}"), 409, "job_finished")


def test_a_resumed_job_skips_the_items_already_stored(app_factory: Any) -> None:
    from services.jobs import run_job

    app = app_factory({"JOBS_BROKER_URL": ""})
    api = Api(app.test_client())
    api.register()
    job = submit(api, b"id,text\na,happy\nb,sad\nc,angry\n", "t.csv").get_json()
    run_job(app, job["id"], max_items=2)  # a worker stopped after two items
    first = results(api, job["id"])
    assert api.get(f"/api/jobs/{job['id']}").get_json()["status"] == "running" and len(first) == 2
    run_job(app, job["id"])
    rows = results(api, job["id"])
    assert [r["name"] for r in rows] == ["a", "b", "c"] and rows[:2] == first
    assert api.get("/api/predictions").get_json()["total"] == 3


def test_jobs_their_results_and_waiting_uploads_go_with_the_account(app_factory: Any) -> None:
    app = app_factory({"JOBS_BROKER_URL": ""})  # no worker: the second job's upload is still waiting
    jobs_api = Api(app.test_client())
    jobs_api.register()
    job = submit(jobs_api, b"text\nhappy\n", "t.csv").get_json()
    from services.jobs import run_job

    run_job(app, job["id"])
    submit(jobs_api, b"text\nsad\n", "t.csv")
    assert any(p.is_file() for p in Path(app.config["JOBS_DIR"]).rglob("*"))
    assert jobs_api.delete("/api/user").status_code == 204
    assert not any(p.is_file() for p in Path(app.config["JOBS_DIR"]).rglob("*"))
    from sqlalchemy import func, select

    from database.models import Job, JobItem
    from database.session import get_database

    with get_database(app).session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
        assert session.scalar(select(func.count()).select_from(JobItem)) == 0
    assert job["id"]


def test_an_unreachable_queue_is_a_clear_503_and_nothing_waits(app_factory: Any) -> None:
    app = app_factory({"JOBS_BROKER_URL": "redis://127.0.0.1:1/0"})  # nothing listens on port 1
    api = Api(app.test_client())
    api.register()
    assert_error(submit(api, b"text\nhappy\n", "t.csv"), 503, "queue_unavailable")
    assert api.get("/api/jobs").get_json()["items"][0]["status"] == "failed"
    assert not any(p.is_file() for p in Path(app.config["JOBS_DIR"]).rglob("*"))


def test_a_job_upload_has_its_own_size_limit(app_factory: Any) -> None:
    app = app_factory({**IMMEDIATE, "MAX_UPLOAD_MB": 1, "JOB_MAX_UPLOAD_MB": 3})
    api = Api(app.test_client())
    api.register()
    api.give_consent()
    noise = os.urandom(2_000_000)
    two_mb = zip_bytes({"face.png": FACE.read_bytes(), "noise.bin": noise}, compression=zipfile.ZIP_STORED)
    assert submit(api, two_mb).status_code == 202  # over MAX_UPLOAD_MB, within JOB_MAX_UPLOAD_MB
    assert_error(submit(api, zip_bytes({"a.bin": noise, "b.bin": noise[::-1]}, compression=zipfile.ZIP_STORED)), 413)
    assert_error(api.post("/api/predict/video", data={"video": (io.BytesIO(two_mb), "x.mp4")}), 413)
