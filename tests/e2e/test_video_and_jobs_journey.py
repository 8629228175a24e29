"""The video and batch-job journey in headless Chromium, after the main journey.

A new user records a short video with the fake camera and microphone (the face photo and the
speech fixture), sees the emotion timeline, submits a small batch (a ZIP with a photo and a
recording) on the jobs page, watches the progress bar reach 100 % while a real worker process
(``huey_consumer worker.huey``) runs it, and downloads the results CSV.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import FACE_PHOTO, REPO_ROOT, SPEECH_WAV, LiveServer
from tests.e2e.test_browser_journey import (
    PASSWORD,
    TIMEOUT,
    agree_to_consent_if_asked,
    check_page,
    css,
    css_all,
    open_tab,
    screenshot,
    text_of,
    visible,
    wait_for,
)

EMAIL = "video@example.org"


@pytest.fixture(scope="module")
def worker(live_server: LiveServer) -> Iterator[subprocess.Popen[bytes]]:
    """The real job worker on the live server's database and SQLite queue."""
    config = live_server.app.config
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "DATABASE_URL": config["DATABASE_URL"],
        "INSTANCE_DIR": config["INSTANCE_DIR"],
        "JOBS_DIR": config["JOBS_DIR"],
        "JOBS_BROKER_URL": "",
        "MODELS_DIR": config["MODELS_DIR"],
        "SECRET_KEY": config["SECRET_KEY"],
        "AUTO_MIGRATE": "false",
    }
    command = [str(Path(sys.executable).parent / "huey_consumer"), "worker.huey", "--workers", "1", "--quiet"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    yield process
    process.send_signal(signal.SIGINT)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Any:
    browser.get_log("browser")
    return browser


def test_a_new_user_records_a_video_and_sees_the_timeline(page: Any, live_server: LiveServer) -> None:
    live_server.require("face", "speech")
    page.get(live_server.url + "/register")
    css(page, "#email").send_keys(EMAIL)
    css(page, "#password").send_keys(PASSWORD)
    css(page, "#confirm").send_keys(PASSWORD)
    css(page, "#register-form [type=submit]").click()
    wait_for(page, lambda d: d.current_url.endswith("/analyse"))
    open_tab(page, live_server.url, "video")
    css(page, "#video-record-start").click()
    agree_to_consent_if_asked(page)
    wait_for(page, visible("#video-record-stop"), 20)
    wait_for(page, lambda d: css(d, "#video-timer").text >= "0:03", 20, "the timer did not run")
    screenshot(page, "30-video-recording")
    css(page, "#video-record-stop").click()
    wait_for(page, lambda d: css(d, "#video-form").get_attribute("data-ready") == "true", 20)
    assert "Recorded" in text_of(page, "#video-chosen")
    css(page, "#video-submit").click()

    def done(d: Any) -> Any:
        error = d.execute_script(
            "const e = document.getElementById('analyse-error'); return e.hidden ? '' : e.textContent"
        )
        if error.strip():
            raise AssertionError(f"the analysis failed in the page: {error.strip()}")
        return css_all(d, "#result [data-testid=timeline]")

    wait_for(page, done, TIMEOUT, "no timeline appeared")
    timeline = css(page, "#result [data-testid=timeline]")
    assert int(timeline.get_attribute("data-steps")) >= 2
    assert [c.get_attribute("data-row") for c in css_all(page, "#result .timeline-canvas")] == [
        "face",
        "voice",
        "fused",
    ]
    assert css_all(page, "#result [data-testid=thumbnails] img")
    statuses = {
        c.get_attribute("data-modality"): c.get_attribute("data-status")
        for c in css_all(page, "#result .modality-card")
    }
    assert statuses == {"face": "used", "speech": "used"}
    check_page(page, "31-video-timeline")

    prediction_id = css(page, "#result").get_attribute("data-prediction-id")
    page.get(f"{live_server.url}/predictions/{prediction_id}")
    wait_for(page, lambda d: css_all(d, "#prediction-view [data-testid=timeline]"), 20)
    check_page(page, "32-video-stored")


def test_a_small_batch_runs_to_100_percent_and_its_results_download(
    page: Any, live_server: LiveServer, worker: subprocess.Popen[bytes], download_dir: Path, tmp_path: Path
) -> None:
    live_server.require("face", "speech")
    batch = tmp_path / "batch.zip"
    with zipfile.ZipFile(batch, "w") as archive:
        archive.write(FACE_PHOTO, "face.png")
        archive.write(SPEECH_WAV, "voice.wav")
        archive.writestr("readme.txt", "not media")
    page.get(live_server.url + "/history")
    css(page, "#jobs-link").click()
    wait_for(page, lambda d: d.current_url.endswith("/jobs"))
    css(page, "#job-file").send_keys(str(batch))
    css(page, "#job-submit").click()
    wait_for(page, lambda d: "/jobs/" in d.current_url, 20)
    wait_for(
        page, lambda d: css(d, "#job-view").get_attribute("data-status") == "done", TIMEOUT, "the job did not finish"
    )
    assert worker.poll() is None
    assert css(page, "#job-view").get_attribute("data-progress") == "100"
    assert css(page, "#job-progress").get_attribute("value") == "100"
    wait_for(page, lambda d: len(css_all(d, "#job-results tbody tr")) == 3)
    assert "3 of 3 items done" in text_of(page, "#job-progress-text")
    check_page(page, "33-job-done")
    job_id = page.current_url.rstrip("/").rsplit("/", 1)[1]
    css(page, "#job-results-csv").click()
    target = download_dir / f"moodlens-job-{job_id}.csv"
    wait_for(page, lambda d: target.is_file() and target.stat().st_size > 0, 30, "the results CSV was not downloaded")
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert [r["name"] for r in rows] == ["face.png", "voice.wav", "readme.txt"]
    assert rows[0]["emotion"] and rows[1]["emotion"] and rows[2]["error"].startswith("unsupported_media_type")
